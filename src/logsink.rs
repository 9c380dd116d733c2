//! Where `marina serve` writes its log: standard error, through one buffer.
//!
//! The access log is by far the most frequent line (one per request), and
//! `tracing`'s general formatter cost about a fifth of a manifest GET's server
//! CPU. So its lines are formatted here by hand, in the same shape (`pretty`
//! or `json`), and written in batches: the buffer goes out when it holds
//! [`BATCH_BYTES`], [`BATCH_DELAY`] after its first line, or at once when any
//! other line comes (a warning, an error, a start-up banner), which is written
//! right after it so the order holds. A process killed with SIGKILL loses at
//! most the access lines of the last [`BATCH_DELAY`]; [`flush`] at exit and the
//! panic hook lose none.
//!
//! Library users who install their own `tracing` subscriber never get here:
//! without [`install`], the access log stays a `tracing` event.

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest an access line waits in the buffer.
pub const BATCH_DELAY: Duration = Duration::from_millis(20);

/// The buffer is written out once it holds this much.
pub const BATCH_BYTES: usize = 64 * 1024;

/// How lines are written: `tracing`'s full text format or its JSON format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `2024-05-01T12:34:56.789012Z  INFO marina::access: request key=value …`
    Pretty,
    /// `{"timestamp":…,"level":"INFO","fields":{…},"target":"marina::access"}`
    Json,
}

/// One request, as the access log records it.
pub struct AccessLine<'a> {
    /// The request id echoed in `X-Request-Id` (letters, digits, `-_.:`).
    pub request_id: &'a str,
    /// The method's name.
    pub method: &'a str,
    /// The route template.
    pub route: &'a str,
    /// The repository, when the route names a valid one.
    pub repository: Option<&'a str>,
    /// The answer's status code.
    pub status: u16,
    /// Request body bytes read.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// Time from the request's arrival to its answer.
    pub duration: Duration,
    /// The client's address, when known.
    pub client: Option<IpAddr>,
    /// The signed-in user, `anonymous` otherwise.
    pub user: &'a str,
    /// Why access control refused, `-` otherwise.
    pub refusal: &'a str,
}

/// The buffer and the text of the current second's timestamp.
struct Pending {
    buf: Vec<u8>,
    second: u64,
    second_text: String,
}

/// The process's log sink.
pub struct Sink {
    format: Format,
    /// Whether access lines take the fast path (not with ANSI colours).
    fast_access: bool,
    pending: Mutex<Pending>,
    /// Woken when the buffer gets its first line.
    filled: Condvar,
    /// Held while bytes are written, so batches go out in order.
    out: Mutex<()>,
    /// Whether the flushing thread runs (otherwise every line goes out at once).
    batching: AtomicBool,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sets up the sink (once per process) and its flushing thread. `colour`
/// (ANSI text for a terminal) leaves the access log to `tracing`'s formatter.
pub fn install(format: Format, colour: bool) -> &'static Sink {
    let mut fresh = false;
    let sink = SINK.get_or_init(|| {
        fresh = true;
        Sink {
            format,
            fast_access: !colour,
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(BATCH_BYTES),
                second: u64::MAX,
                second_text: String::new(),
            }),
            filled: Condvar::new(),
            out: Mutex::new(()),
            batching: AtomicBool::new(false),
        }
    });
    if fresh {
        let flusher: &'static Sink = sink;
        let spawned = std::thread::Builder::new()
            .name("marina-log".into())
            .spawn(move || loop {
                flusher.wait_and_flush();
            });
        sink.batching.store(spawned.is_ok(), Ordering::Relaxed);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            flush();
            previous(info);
        }));
    }
    sink
}

/// The sink for access lines, when [`install`] set one up for them.
pub fn access() -> Option<&'static Sink> {
    SINK.get().filter(|s| s.fast_access)
}

/// Writes out whatever is buffered (at exit).
pub fn flush() {
    if let Some(sink) = SINK.get() {
        sink.drain(sink.pending_lock());
    }
}

/// The writer `tracing_subscriber` formats its (other) lines into.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MakeStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter
    }
}

/// Writes a formatted line after whatever is buffered.
#[derive(Debug)]
pub struct LineWriter;

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match SINK.get() {
            Some(sink) => {
                let mut p = sink.pending_lock();
                p.buf.extend_from_slice(bytes);
                sink.drain(p);
            }
            None => std::io::stderr().write_all(bytes)?,
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn pending_lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Buffers one access line.
    pub fn access(&self, line: &AccessLine<'_>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut p = self.pending_lock();
        let was_empty = p.buf.is_empty();
        if p.second != now.as_secs() {
            p.second = now.as_secs();
            p.second_text = second_text(now.as_secs());
        }
        let Pending {
            buf, second_text, ..
        } = &mut *p;
        match self.format {
            Format::Pretty => pretty(buf, second_text, now.subsec_micros(), line),
            Format::Json => json(buf, second_text, now.subsec_micros(), line),
        }
        if p.buf.len() >= BATCH_BYTES || !self.batching.load(Ordering::Relaxed) {
            self.drain(p);
        } else if was_empty {
            drop(p);
            self.filled.notify_one();
        }
    }

    /// Waits for a first line, lets the batch fill for [`BATCH_DELAY`], writes it.
    fn wait_and_flush(&self) {
        let mut p = self.pending_lock();
        while p.buf.is_empty() {
            p = self.filled.wait(p).unwrap_or_else(|e| e.into_inner());
        }
        drop(p);
        std::thread::sleep(BATCH_DELAY);
        self.drain(self.pending_lock());
    }

    /// Writes the buffer out, in order with other batches.
    fn drain(&self, mut p: MutexGuard<'_, Pending>) {
        if p.buf.is_empty() {
            return;
        }
        let keep = p.buf.capacity().min(BATCH_BYTES);
        let batch = std::mem::replace(&mut p.buf, Vec::with_capacity(keep));
        let _out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        drop(p);
        // A closed stderr loses the log, never the request.
        let _ = std::io::stderr().lock().write_all(&batch);
    }
}

/// `2024-05-01T12:34:56` for seconds since the epoch.
fn second_text(secs: u64) -> String {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// A number in decimal (without `fmt`, which costs several times more: this runs
/// for every request).
fn number(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `n` in decimal, zero-padded to `width` digits.
fn padded(buf: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n).as_bytes();
    buf.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    buf.extend_from_slice(digits);
}

/// `<second>.<micros>Z`, the timestamp both formats write.
fn timestamp(buf: &mut Vec<u8>, second: &str, micros: u32) {
    buf.extend_from_slice(second.as_bytes());
    buf.push(b'.');
    padded(buf, u64::from(micros), 6);
    buf.push(b'Z');
}

/// Milliseconds with three decimals, from whole microseconds.
fn millis(buf: &mut Vec<u8>, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    number(buf, micros / 1000);
    buf.push(b'.');
    padded(buf, micros % 1000, 3);
}

/// `tracing`'s quoted form of a string field (Rust's `Debug` for `str`).
fn quoted(buf: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        let _ = write!(buf, "{s:?}");
    }
}

/// One field's value, written the way each format writes it.
enum Value<'a> {
    /// Quoted in both formats.
    Text(&'a str),
    /// Bare in `pretty` (a request id: letters, digits and `-_.:`), a string in JSON.
    Bare(&'a str),
    Number(u64),
    Millis(Duration),
    Addr(Option<IpAddr>),
}

/// The access line's fields, in order.
fn fields<'a>(l: &'a AccessLine<'a>) -> [(&'static str, Value<'a>); 11] {
    [
        ("request_id", Value::Bare(l.request_id)),
        ("method", Value::Text(l.method)),
        ("route", Value::Text(l.route)),
        ("repository", Value::Text(l.repository.unwrap_or("-"))),
        ("status", Value::Number(u64::from(l.status))),
        ("bytes_in", Value::Number(l.bytes_in)),
        ("bytes_out", Value::Number(l.bytes_out)),
        ("duration_ms", Value::Millis(l.duration)),
        ("client", Value::Addr(l.client)),
        ("user", Value::Text(l.user)),
        ("refusal", Value::Text(l.refusal)),
    ]
}

fn pretty(buf: &mut Vec<u8>, second: &str, micros: u32, l: &AccessLine<'_>) {
    timestamp(buf, second, micros);
    buf.extend_from_slice(b"  INFO marina::access: request");
    for (key, value) in fields(l) {
        buf.push(b' ');
        buf.extend_from_slice(key.as_bytes());
        buf.push(b'=');
        match value {
            Value::Text(t) => quoted(buf, t),
            Value::Bare(t) => buf.extend_from_slice(t.as_bytes()),
            Value::Number(n) => number(buf, n),
            Value::Millis(d) => millis(buf, d),
            Value::Addr(Some(ip)) => {
                let _ = write!(buf, "{ip}");
            }
            Value::Addr(None) => buf.push(b'-'),
        }
    }
    buf.push(b'\n');
}

fn json(buf: &mut Vec<u8>, second: &str, micros: u32, l: &AccessLine<'_>) {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(buf, second, micros);
    buf.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"request\"");
    for (key, value) in fields(l) {
        buf.extend_from_slice(b",\"");
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(b"\":");
        match value {
            Value::Text(t) | Value::Bare(t) => {
                let _ = serde_json::to_writer(&mut *buf, t);
            }
            Value::Number(n) => number(buf, n),
            Value::Millis(d) => millis(buf, d),
            Value::Addr(Some(ip)) => {
                let _ = write!(buf, "\"{ip}\"");
            }
            Value::Addr(None) => buf.extend_from_slice(b"\"-\""),
        }
    }
    buf.extend_from_slice(b"},\"target\":\"marina::access\"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(user: &'a str, client: Option<IpAddr>) -> AccessLine<'a> {
        AccessLine {
            request_id: "trace-42",
            method: "PUT",
            route: "/v2/{name}/manifests/{reference}",
            repository: Some("team/app"),
            status: 201,
            bytes_in: 528,
            bytes_out: 0,
            duration: Duration::from_micros(1_902),
            client,
            user,
            refusal: "-",
        }
    }

    #[test]
    fn pretty_lines_read_like_tracing_full_format() {
        let mut buf = Vec::new();
        let client = Some("192.0.2.7".parse().unwrap());
        pretty(&mut buf, "2024-05-01T12:34:56", 789, &line("alice", client));
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2024-05-01T12:34:56.000789Z  INFO marina::access: request request_id=trace-42 \
             method=\"PUT\" route=\"/v2/{name}/manifests/{reference}\" repository=\"team/app\" \
             status=201 bytes_in=528 bytes_out=0 duration_ms=1.902 client=192.0.2.7 \
             user=\"alice\" refusal=\"-\"\n"
        );
    }

    #[test]
    fn numbers_are_padded_where_the_format_pads_them() {
        let text = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut buf = Vec::new();
            f(&mut buf);
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(text(&|b| millis(b, Duration::from_micros(5))), "0.005");
        assert_eq!(text(&|b| millis(b, Duration::from_secs(1))), "1000.000");
        assert_eq!(text(&|b| timestamp(b, "T", 0)), "T.000000Z");
        assert_eq!(text(&|b| timestamp(b, "T", 999_999)), "T.999999Z");
        assert_eq!(text(&|b| number(b, u64::MAX)), u64::MAX.to_string());
    }

    #[test]
    fn pretty_lines_escape_what_a_user_name_could_carry() {
        let mut buf = Vec::new();
        pretty(&mut buf, "2024-05-01T12:34:56", 0, &line("a\"b\nc\\", None));
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.ends_with(" client=- user=\"a\\\"b\\nc\\\\\" refusal=\"-\"\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
    }

    #[test]
    fn json_lines_parse_with_the_fields_tracing_writes() {
        let mut buf = Vec::new();
        let client = Some("2001:db8::1".parse().unwrap());
        json(
            &mut buf,
            "2024-05-01T12:34:56",
            123_456,
            &line("ä\"x", client),
        );
        let text = String::from_utf8(buf).unwrap();
        assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["timestamp"], "2024-05-01T12:34:56.123456Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "marina::access");
        let f = &v["fields"];
        assert_eq!(f["message"], "request");
        assert_eq!(f["request_id"], "trace-42");
        assert_eq!(f["method"], "PUT");
        assert_eq!(f["route"], "/v2/{name}/manifests/{reference}");
        assert_eq!(f["repository"], "team/app");
        assert_eq!(f["status"], 201);
        assert_eq!(f["bytes_in"], 528);
        assert_eq!(f["bytes_out"], 0);
        assert_eq!(f["duration_ms"], 1.902);
        assert_eq!(f["client"], "2001:db8::1");
        assert_eq!(f["user"], "ä\"x");
        assert_eq!(f["refusal"], "-");
    }

    #[test]
    fn seconds_are_written_in_utc() {
        assert_eq!(second_text(0), "1970-01-01T00:00:00");
        assert_eq!(second_text(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(second_text(1_714_566_896), "2024-05-01T12:34:56");
    }

    #[test]
    fn durations_keep_microseconds() {
        let mut buf = Vec::new();
        millis(&mut buf, Duration::from_nanos(1_234_567_891));
        buf.push(b' ');
        millis(&mut buf, Duration::from_nanos(999));
        assert_eq!(String::from_utf8(buf).unwrap(), "1234.567 0.000");
    }
}
