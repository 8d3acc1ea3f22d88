#!/usr/bin/env python3
"""Gives every string schema in openapi.yaml that nothing else keeps free of
U+0000 (no pattern, format, enum, const or $ref) the pattern "^[^\\u0000]*$".

    scripts/openapi-nul-free.py [openapi.yaml]     # rewrites the file in place

A helper for re-applying the rule to schemas a branch adds; the rule itself is
the test in cli/src/openapi.rs (no_schema_in_openapi_yaml_or_the_served_document_
admits_u0000), which also names free-form values (use JsonValue/JsonObject) and
patterns that let U+0000 through, which this script does not fix. A schema
whose description says "U+0000 included" admits it on purpose and is left
alone. It edits the text, line by line, so the diff stays small: review it.
"""
import re
import sys

PATTERN = '"^[^\\\\u0000]*$"'  # YAML double-quoted: the regex ^[^\u0000]*$
STRING = r'(string|\[string, "null"\]|\["null", string\])'
GUARDED = re.compile(r'(pattern|format|enum|const|\$ref):')


def indent_of(line):
    return len(line) - len(line.lstrip())


def flow(line):
    """Each innermost `{ ... }` with `type: string` and nothing guarding it."""
    def fix(match):
        body = match.group(0)
        if not re.search(r'\btype: ' + STRING + r'\s*[,}]', body) or GUARDED.search(body):
            return body
        return body[:-1].rstrip() + ', pattern: ' + PATTERN + ' }'
    return re.sub(r'\{[^{}]*\}', fix, line)


def main(path):
    lines = open(path).read().split('\n')
    out = []
    for i, line in enumerate(lines):
        block = re.match(r'^(\s*)(- )?type: ' + STRING + r'\s*$', line)
        if not block:
            out.append(flow(line))
            continue
        indent = len(block.group(1)) + (2 if block.group(2) else 0)
        siblings = []
        for step in (1, -1):
            j = i + step
            while 0 <= j < len(lines) and (not lines[j].strip() or indent_of(lines[j]) >= indent):
                if lines[j].strip() and indent_of(lines[j]) == indent:
                    siblings.append(lines[j].strip())
                j += step
        out.append(line)
        # The schemas that admit U+0000 on purpose say so (DeliveryText).
        tolerated = any('U+0000 included' in s for s in siblings)
        if not tolerated and not any(GUARDED.match(s) for s in siblings):
            out.append(' ' * indent + 'pattern: ' + PATTERN)
    open(path, 'w').write('\n'.join(out))


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 else 'openapi.yaml')
