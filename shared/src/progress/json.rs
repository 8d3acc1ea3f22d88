//! The progress answer's JSON, written in a few large pieces.

use uuid::Uuid;

use super::{Progress, ToolProgress};

impl Progress<'_> {
    /// The answer's JSON: byte for byte what `serde_json::to_string` makes of
    /// it (a test holds it to that), written in a few large pieces. The
    /// progress answer is the service's most frequent and its largest (31
    /// tools); serde writes it in some 2,000 small writes, which measured as a
    /// quarter of the request's instructions.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.json_len_estimate());
        out.push_str("{\"user_id\":\"");
        out.push_str(
            self.user_id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer()),
        );
        out.push_str("\",\"tools\":[");
        for (i, tool) in self.tools.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            tool.push_json(&mut out);
        }
        out.push_str("],\"summary\":");
        out.push_str(&serde_json::to_string(&self.summary).expect("a summary serializes"));
        out.push('}');
        out
    }

    /// A little over the answer's length (escapes aside), so that it is
    /// written without growing: about 400 bytes a tool beside its name, and
    /// its missing inputs.
    fn json_len_estimate(&self) -> usize {
        let tool = |t: &ToolProgress<'_>| {
            400 + t.slug.len()
                + t.name.len()
                + t.missing
                    .iter()
                    .map(|m| 48 + m.field.len() + m.label.len() + m.from_tool.len())
                    .sum::<usize>()
        };
        256 + self.tools.iter().map(tool).sum::<usize>()
    }
}

impl ToolProgress<'_> {
    fn push_json(&self, out: &mut String) {
        let mut number = itoa::Buffer::new();
        out.push_str("{\"sprint\":");
        out.push_str(number.format(self.sprint));
        out.push_str(",\"slug\":");
        push_word(out, self.slug);
        out.push_str(",\"name\":");
        push_json_string(out, self.name);
        out.push_str(",\"module\":");
        out.push_str(number.format(self.module));
        out.push_str(if self.optional {
            ",\"optional\":true,\"status\":\""
        } else {
            ",\"optional\":false,\"status\":\""
        });
        out.push_str(self.status.as_str());
        out.push_str("\",\"percentage\":");
        out.push_str(number.format(self.percentage));
        for (key, at) in [
            (",\"unlocked_at\":", &self.unlocked_at),
            (",\"started_at\":", &self.started_at),
            (",\"completed_at\":", &self.completed_at),
        ] {
            out.push_str(key);
            match at {
                Some(at) => crate::foundation::rfc3339::push_json(out, at),
                None => out.push_str("null"),
            }
        }
        out.push_str(",\"unread_comments\":");
        out.push_str(number.format(self.unread_comments));
        if !self.missing.is_empty() {
            out.push_str(",\"missing\":[");
            for (i, input) in self.missing.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"field\":");
                push_word(out, input.field);
                out.push_str(",\"label\":");
                out.push_str(input.label_json);
                out.push_str(",\"from_tool\":");
                push_word(out, input.from_tool);
                out.push('}');
            }
            out.push(']');
        }
        out.push('}');
    }
}

/// A slug or a field id as a JSON string. The registry admits only lowercase
/// letters, digits, '-', '_' and '.' in them (`registry/validate.rs`), which
/// JSON takes as they are: the answer's hundreds of them need no scan.
fn push_word(out: &mut String, word: &str) {
    debug_assert!(
        word.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b)),
        "{word:?} is not a registry word"
    );
    out.push('"');
    out.push_str(word);
    out.push('"');
}

/// `s` as a JSON string: as it is when nothing in it needs escaping (slugs and
/// names, nearly always), through serde_json otherwise.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).expect("a string serializes"));
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::super::{Status, summarize};
    use super::*;

    #[test]
    fn the_written_json_is_exactly_what_serde_writes() {
        use chrono::TimeZone;
        let names = [
            "WOOP",
            "Know \"Thyself\"",
            "Énergie \\ focus",
            "tab\there",
            "",
            "线",
        ];
        let statuses = [
            Status::Locked,
            Status::Unlocked,
            Status::InProgress,
            Status::Completed,
        ];
        // Slugs as the registry admits them; names and labels anything.
        let slugs = ["woop", "know-thyself", "value-prop-2", "a"];
        // As the forms make them.
        let label_json: Vec<String> = names
            .iter()
            .map(|n| serde_json::to_string(n).unwrap())
            .collect();
        let mut tools = Vec::new();
        for i in 0..40_u8 {
            let at = |k: i64| {
                (i64::from(i) % (k + 1) != 0).then(|| {
                    Utc.timestamp_opt(
                        1_700_000_000 + i64::from(i) * 3_601 * k,
                        (u32::from(i) * 7_919) % 1_000_000 * 1_000,
                    )
                    .unwrap()
                })
            };
            tools.push(ToolProgress {
                sprint: i,
                slug: slugs[usize::from(i) % slugs.len()],
                name: names[(usize::from(i) + 1) % names.len()],
                module: i / 5,
                optional: i % 3 == 0,
                status: statuses[usize::from(i) % 4],
                percentage: i32::from(i) * 7 - 20,
                unlocked_at: at(1),
                started_at: at(2),
                completed_at: at(3),
                unread_comments: i64::from(i % 4),
                missing: if i % 4 == 0 {
                    vec![super::super::MissingInput {
                        field: "identity.dream.one_sentence",
                        label: names[usize::from(i) % names.len()],
                        label_json: &label_json[usize::from(i) % names.len()],
                        from_tool: "dream",
                    }]
                } else {
                    Vec::new()
                },
            });
        }
        for n in [0, 1, 31, 40] {
            let progress = Progress {
                user_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
                summary: summarize(&tools[..n]),
                tools: tools[..n].to_vec(),
            };
            assert_eq!(
                progress.to_json(),
                serde_json::to_string(&progress).unwrap()
            );
        }
    }
}
