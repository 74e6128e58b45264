//! Load from a second process: Debian's `wrk` (`apt-get install wrk`) on keep-alive connections,
//! one thread, its latency distribution read from `--latency`. Every figure a benchmark prints
//! comes with a ceiling measured the same way in the same run, so ratios survive a noisy machine.

use std::process::Command;

/// What one wrk run measured.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One request as wrk sends it: method, headers and body.
#[derive(Debug, Clone, Default)]
pub struct Req<'a> {
    pub post_body: Option<&'a str>,
    pub headers: Vec<(&'a str, String)>,
    /// Each request takes the next of these as its `Cookie` (many shoppers on one connection).
    pub cookies: Vec<String>,
}

impl Req<'_> {
    fn lua(&self) -> String {
        let mut s = String::new();
        if let Some(body) = self.post_body {
            s.push_str("wrk.method = \"POST\"\n");
            s.push_str(&format!("wrk.body = {}\n", lua_string(body)));
        }
        for (k, v) in &self.headers {
            s.push_str(&format!(
                "wrk.headers[{}] = {}\n",
                lua_string(k),
                lua_string(v)
            ));
        }
        if !self.cookies.is_empty() {
            let list: Vec<String> = self.cookies.iter().map(|c| lua_string(c)).collect();
            s.push_str(&format!("cookies = {{{}}}\ni = 0\n", list.join(", ")));
            s.push_str(
                "request = function()\n  i = i + 1\n  \
                 wrk.headers[\"Cookie\"] = cookies[(i % #cookies) + 1]\n  \
                 return wrk.format()\nend\n",
            );
        }
        s
    }
}

fn lua_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Runs wrk against `url` for `secs` seconds on `connections` connections. Panics when wrk is
/// missing, or when any answer was not 2xx/3xx or a socket failed: a figure over errors is void.
pub fn run(url: &str, req: &Req, connections: usize, secs: u64) -> Load {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("req.lua");
    std::fs::write(&script, req.lua()).unwrap();
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .expect("wrk runs (Debian: apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "{url}: errors under load:\n{text}"
    );
    parse(&text).unwrap_or_else(|| panic!("wrk's output not understood:\n{text}"))
}

/// Reads `Requests/sec:` and the 50% and 99% lines of `--latency`'s distribution.
pub fn parse(text: &str) -> Option<Load> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(|r| r.trim().to_string()))
    };
    Some(Load {
        rps: field("Requests/sec:")?.parse().ok()?,
        p50_ms: duration_ms(&field("50%")?)?,
        p99_ms: duration_ms(&field("99%")?)?,
    })
}

/// wrk's durations: `812.00us`, `1.43ms`, `2.01s`.
fn duration_ms(s: &str) -> Option<f64> {
    let (n, scale) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (s.strip_suffix('s')?, 1000.0)
    };
    Some(n.parse::<f64>().ok()? * scale)
}
