//! HTTP from inside a namespace: `curl` with bounded timeouts, and a keep-alive connection held
//! open across a change of the rules.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::Ns;

/// The metadata service, as pods address it.
pub const IMDS: &str = "http://169.254.169.254";

/// What curl got: its exit code, the HTTP status (0 when none) and the body (with `-i`, the
/// headers too).
#[derive(Debug)]
pub struct Got {
    pub exit: Option<i32>,
    pub status: u16,
    pub body: String,
}

/// `curl` inside `ns`, bounded by `max_secs`.
pub fn curl(ns: &Ns, max_secs: u32, args: &[&str]) -> Got {
    curl_as(ns, None, max_secs, args)
}

/// [`curl`] run as `uid` (and the same gid, no supplementary groups) when given, with `setpriv`.
pub fn curl_as(ns: &Ns, uid: Option<u32>, max_secs: u32, args: &[&str]) -> Got {
    let max = max_secs.to_string();
    let (reuid, regid) = uid
        .map(|u| (format!("--reuid={u}"), format!("--regid={u}")))
        .unwrap_or_default();
    let mut all = match uid {
        Some(_) => vec!["setpriv", &reuid, &regid, "--clear-groups"],
        None => Vec::new(),
    };
    all.extend(["curl", "-sS", "--max-time", &max, "-w", "\n%{http_code}"]);
    all.extend_from_slice(args);
    let out = ns.exec(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Got {
        exit: out.status.code(),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

pub fn get(ns: &Ns, path: &str, token: Option<&str>) -> Got {
    let url = format!("{IMDS}{path}");
    match token {
        Some(t) => curl(
            ns,
            3,
            &["-H", &format!("X-aws-ec2-metadata-token: {t}"), &url],
        ),
        None => curl(ns, 3, &[&url]),
    }
}

/// The token PUT; `-i` so that the answer's headers can be checked.
pub fn put_token(ns: &Ns, max_secs: u32) -> Got {
    let url = format!("{IMDS}/latest/api/token");
    let ttl = "X-aws-ec2-metadata-token-ttl-seconds: 60";
    curl(ns, max_secs, &["-i", "-X", "PUT", "-H", ttl, &url])
}

/// The token itself: the last line of a `-i` answer.
pub fn token_of(got: &Got) -> String {
    got.body
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A keep-alive connection from a pod to the metadata service, opened and used once before the
/// rules exist; it asks again when told to, and says what came back.
pub struct LongLived {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

const LONG_LIVED: &str = r#"
trap '' PIPE
exec 3<>/dev/tcp/169.254.169.254/80 || { echo "first: cannot connect"; exit 0; }
ask() {
  printf 'GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n' >&3 2>/dev/null || { echo "write failed"; return; }
  local line len=0 body=""
  IFS= read -r -t 3 line <&3 || { echo "no answer"; return; }
  local status=${line%$'\r'}
  while IFS= read -r -t 3 line <&3; do
    line=${line%$'\r'}
    [ -z "$line" ] && break
    case "${line,,}" in content-length:*) len=${line#*: } ;; esac
  done
  [ "$len" -gt 0 ] && IFS= read -r -t 3 -N "$len" body <&3
  echo "$status $body"
}
echo "first: $(ask)"
read -r _go
echo "second: $(ask)"
"#;

impl LongLived {
    pub fn open(pod: &Ns) -> LongLived {
        let mut child = pod
            .command(&["bash", "-c", LONG_LIVED])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start bash in the pod");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        LongLived {
            child,
            stdin,
            lines,
        }
    }

    pub fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| "(nothing)".into())
    }

    pub fn ask_again(&mut self) -> String {
        let _ = writeln!(self.stdin, "go");
        let _ = self.stdin.flush();
        self.next()
    }
}

impl Drop for LongLived {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
