//! wrk: the load on the local server, and its report.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::call::{Body, Call};

/// The wrk script that sends the calls, one chosen at random per request.
/// `tag` makes the numbered bodies of this run unlike any other run's;
/// `launches` is the directory of this run's launch files.
pub fn wrk_script(calls: &[Call], tag: &str, launches: &Path) -> String {
    let mut out = String::from("local specs = {\n");
    for call in calls {
        let mut headers: String = call
            .headers
            .iter()
            .map(|(name, value)| format!("[ [==[{name}]==] ] = [==[{value}]==], "))
            .collect();
        if call.body != Body::None {
            headers.push_str(r#"["Content-Type"] = "application/json", "#);
        }
        let (body, kind) = match &call.body {
            Body::None => ("nil".to_owned(), "fixed"),
            Body::Fixed(body) => (format!("[==[{body}]==]"), "fixed"),
            Body::Numbered(body) => (format!("[==[{body}]==]"), "numbered"),
            Body::Launch => ("nil".to_owned(), "launch"),
        };
        let _ = writeln!(
            out,
            "  {{ \"{}\", [==[{}]==], {{ {headers}}}, {body}, \"{kind}\" }},",
            call.method, call.path
        );
    }
    let _ = writeln!(
        out,
        "}}\nlocal tag = [==[{tag}]==]\nlocal launch_dir = [==[{}]==]",
        launches.display()
    );
    out.push_str(
        r#"local calls, launches, sent = {}, {}, 0
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("id", threads)
end
init = function(args)
  for i, s in ipairs(specs) do
    if s[5] == "fixed" then calls[i] = wrk.format(s[1], s[2], s[3], s[4]) end
    if s[5] == "launch" and #launches == 0 then
      for line in io.lines(launch_dir .. "/launches-" .. id .. ".txt") do
        launches[#launches + 1] = line
      end
    end
  end
  math.randomseed(7919 * id)
end
request = function()
  local i = math.random(#specs)
  local s = specs[i]
  if s[5] == "fixed" then return calls[i] end
  sent = sent + 1
  if s[5] == "numbered" then
    local body = string.gsub(s[4], "{{N}}", tag .. "-" .. id .. "-" .. sent)
    return wrk.format(s[1], s[2], s[3], body)
  end
  -- A launch used up: the server refuses the replay, and the run fails.
  local body = launches[sent] or launches[1]
  return wrk.format(s[1], s[2], s[3], body)
end
"#,
    );
    out
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl std::fmt::Display for Throughput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0}/s, p50 {:.3} ms, p99 {:.3} ms",
            self.per_second, self.p50_ms, self.p99_ms
        )
    }
}

/// wrk's threads at `connections`: the machine's two cores.
pub fn wrk_threads(connections: usize) -> usize {
    connections.clamp(1, 2)
}

/// Runs wrk for `seconds` at `connections` and reads its report. Any non-2xx
/// answer or socket error fails the run: the load must be valid requests.
pub fn run_wrk(port: u16, script: &Path, connections: usize, seconds: u64) -> Result<Throughput> {
    let threads = wrk_threads(connections);
    let output = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    parse_wrk(&text)
}

pub fn parse_wrk(text: &str) -> Result<Throughput> {
    if let Some(line) = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses"))
    {
        bail!("the load got error answers: {}", line.trim());
    }
    if let Some(line) = text.lines().find(|l| l.contains("Socket errors")) {
        bail!("the load had socket errors: {}", line.trim());
    }
    let per_second = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    let percentile = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| duration_ms(v.trim()))
            .with_context(|| format!("no {p} latency in wrk's output: {text}"))
    };
    Ok(Throughput {
        per_second,
        p50_ms: percentile("50%")?,
        p99_ms: percentile("99%")?,
    })
}

fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrk_script_sends_fixed_numbered_and_launch_bodies_as_each_call_says() {
        let call = |path: &str, body: Body| Call {
            method: "POST",
            path: path.into(),
            headers: vec![("X-Test", "yes".into())],
            body,
            statements: vec![],
        };
        let script = wrk_script(
            &[
                call("/a", Body::None),
                call("/b", Body::Fixed("{}".into())),
                call("/c", Body::Numbered(r#"{"n": "{{N}}"}"#.into())),
                call("/d", Body::Launch),
            ],
            "run-7",
            Path::new("/tmp/launch-dir"),
        );
        let specs: Vec<&str> = script.lines().filter(|l| l.starts_with("  { ")).collect();
        assert_eq!(specs.len(), 4, "{script}");
        assert!(specs[0].ends_with("nil, \"fixed\" },") && !specs[0].contains("Content-Type"));
        assert!(specs[1].contains(r#"["Content-Type"] = "application/json""#));
        assert!(specs[2].ends_with(r#"[==[{"n": "{{N}}"}]==], "numbered" },"#));
        assert!(specs[3].ends_with("nil, \"launch\" },"));
        assert!(
            specs
                .iter()
                .all(|s| s.contains("[ [==[X-Test]==] ] = [==[yes]==]"))
        );
        assert!(script.contains("local tag = [==[run-7]==]"));
        assert!(script.contains("local launch_dir = [==[/tmp/launch-dir]==]"));
    }

    #[test]
    fn wrk_reports_are_read_and_error_answers_fail_the_run() {
        let report = "Running 5s test @ http://127.0.0.1:3000
  2 threads and 16 connections
  Latency Distribution
     50%    1.50ms
     75%    2.00ms
     90%    3.00ms
     99%  850.00us
  20000 requests in 5.00s, 3.00MB read
Requests/sec:   4000.12
Transfer/sec:    600.00KB
";
        let t = parse_wrk(report).unwrap();
        assert_eq!(t.per_second, 4000.12);
        assert_eq!(t.p50_ms, 1.5);
        assert_eq!(t.p99_ms, 0.85);
        let failing = report.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 12\nRequests/sec",
        );
        assert!(
            parse_wrk(&failing)
                .unwrap_err()
                .to_string()
                .contains("Non-2xx")
        );
    }
}
