//! HTML building blocks: escaping, times and durations as a duty coordinator
//! reads them, and the page shell.
//!
//! Every value that comes from the views (ids, names, attributes, reasons,
//! comments) goes through [`Escaped`], so nothing a client sent can become markup.

use std::{fmt, fmt::Write as _, time::Duration};

use baton_domain::Timestamp;

/// Displays a string HTML-escaped: safe in text and in quoted attributes.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// Appends formatted text to a page being built (writing to a `String`
/// cannot fail).
macro_rules! put {
    ($out:expr, $($arg:tt)*) => {{
        let _ = ::std::fmt::Write::write_fmt($out, format_args!($($arg)*));
    }};
}
pub(crate) use put;

/// Signed time left as on the board: `mm:ss` under an hour, `h:mm:ss` under
/// a day, `Nd hh:mm` beyond; a leading `-` once the time has run out.
/// The board's script formats the same way (`fmtLeft` in `board.js`).
pub fn time_left(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let secs = millis.unsigned_abs() / 1000;
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{sign}{d}d {h:02}:{m:02}")
    } else if h > 0 {
        format!("{sign}{h}:{m:02}:{s:02}")
    } else {
        format!("{sign}{m:02}:{s:02}")
    }
}

/// A duration as people say it: `2s`, `14m 05s`, `3h 20m`, `2d 4h`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 && h == 0 {
        format!("{days}d")
    } else if days > 0 {
        format!("{days}d {h}h")
    } else if h > 0 && m == 0 {
        format!("{h}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 && s == 0 {
        format!("{m}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else if secs > 0 || d.is_zero() {
        format!("{s}s")
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// An instant in the board's time zone: `14:05:09` if it is today there,
/// `Mon 23 Nov 14:05` otherwise.
pub fn instant(at: Timestamp, now: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    let zoned = |t: Timestamp| {
        jiff::Timestamp::from_millisecond(t.0)
            .ok()
            .map(|t| t.to_zoned(tz.clone()))
    };
    match (zoned(at), zoned(now)) {
        (Some(at), Some(now)) if at.date() == now.date() => at.strftime("%H:%M:%S").to_string(),
        (Some(at), _) => at.strftime("%a %d %b %H:%M").to_string(),
        (None, _) => "?".to_owned(),
    }
}

/// A calendar day in the board's time zone: `Mon 23 Nov`.
pub fn day(at: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_millisecond(at.0)
        .map(|t| t.to_zoned(tz.clone()).strftime("%a %d %b").to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// A share as a whole percentage.
pub fn percent(share: f64) -> String {
    format!("{:.0}%", (share * 100.0).clamp(0.0, 100.0).floor())
}

/// CSS class for a compliance share: good, fair or poor, or none when
/// nothing was decided yet.
pub fn compliance_class(share: f64, decided: u64) -> &'static str {
    if decided == 0 {
        "c-none"
    } else if share >= 0.95 {
        "c-good"
    } else if share >= 0.80 {
        "c-fair"
    } else {
        "c-poor"
    }
}

/// What every page shares: head, style, script, header with the clock.
#[derive(Debug, Clone, Copy)]
pub struct Shell<'a> {
    pub title: &'a str,
    pub now: Timestamp,
    /// The views were complete when the page was rendered.
    pub current: bool,
    /// Which page, for the script (`board`, `pair`, `handoff`, `rebuilding`).
    pub page: &'a str,
    /// IANA name of the board's time zone, for the script's clock.
    pub tz: &'a str,
    /// The hand-off a page is about, for the script to follow its events.
    pub subject: Option<&'a str>,
    /// A partitioned projector's share (`(partition, partitions)`): the
    /// board then shows only that share, and says so on every page.
    pub partition: Option<(u32, u32)>,
}

impl Shell<'_> {
    /// The time now in the board's zone, as the header shows it.
    fn clock(&self) -> String {
        let tz = jiff::tz::TimeZone::get(self.tz).unwrap_or(jiff::tz::TimeZone::UTC);
        jiff::Timestamp::from_millisecond(self.now.0)
            .map(|t| t.to_zoned(tz).strftime("%H:%M:%S").to_string())
            .unwrap_or_default()
    }

    /// The page around `body`.
    pub fn wrap(&self, body: &str) -> String {
        let mut out = String::with_capacity(body.len() + 1024);
        put!(
            &mut out,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title}</title>\
             <link rel=\"stylesheet\" href=\"/static/board.css\">\
             <script src=\"/static/board.js\" defer></script></head>\n\
             <body data-page=\"{page}\" data-now=\"{now}\" data-current=\"{current}\" data-tz=\"{tz}\" data-subject=\"{subject}\" data-live=\"off\">\n\
             <header><a class=\"home\" href=\"/\">Baton</a> <span class=\"title\">{title}</span>\
             <span class=\"clock\" id=\"clock\">{clock}</span> \
             {partition}<span class=\"live\" id=\"live\" title=\"live updates\">offline</span></header>\n\
             <main>\n",
            title = Escaped(self.title),
            page = Escaped(self.page),
            now = self.now.0,
            current = self.current,
            tz = Escaped(self.tz),
            subject = Escaped(self.subject.unwrap_or("")),
            clock = self.clock(),
            partition = self
                .partition
                .map(|(p, n)| format!(
                    "<span class=\"partition\" title=\"this board shows one partition of the hand-offs\">partition {p} of {n} only</span> "
                ))
                .unwrap_or_default(),
        );
        out.push_str(body);
        out.push_str("</main>\n</body></html>\n");
        out
    }
}

/// The body shown while the views are being rebuilt from the stream.
pub fn rebuilding(applied: u64) -> String {
    let mut out = String::new();
    put!(
        &mut out,
        "<section class=\"rebuilding\"><h1>The views are being rebuilt</h1>\
         <p>The projector is reading the event log again ({applied} events so far). \
         Figures appear here as soon as it has caught up; until then none are shown, \
         because they would be incomplete.</p></section>\n"
    );
    out
}

/// `<a href="/handoff/<id>">id</a>`.
pub fn handoff_link(out: &mut String, id: &str) {
    let _ = write!(out, "<a href=\"/handoff/{0}\">{0}</a>", Escaped(id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_be_markup() {
        assert_eq!(
            Escaped("<script>alert('x') & \"y\"</script>").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(Escaped("ward-5").to_string(), "ward-5");
        assert_eq!(Escaped("").to_string(), "");
        assert_eq!(Escaped("é<").to_string(), "é&lt;");
    }

    #[test]
    fn time_left_reads_like_a_countdown() {
        assert_eq!(time_left(0), "00:00");
        assert_eq!(time_left(65_000), "01:05");
        assert_eq!(time_left(3_600_000 + 61_000), "1:01:01");
        assert_eq!(time_left(-5_000), "-00:05");
        assert_eq!(time_left(2 * 86_400_000 + 3_600_000 * 3), "2d 03:00");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(Duration::from_secs(2)), "2s");
        assert_eq!(duration(Duration::from_secs(845)), "14m 05s");
        assert_eq!(duration(Duration::from_secs(12_000)), "3h 20m");
        assert_eq!(duration(Duration::from_millis(250)), "250ms");
        assert_eq!(duration(Duration::from_secs(1800)), "30m");
        assert_eq!(duration(Duration::from_secs(4 * 3600)), "4h");
    }

    #[test]
    fn instants_are_local_to_the_board() {
        let tz = jiff::tz::TimeZone::get("Europe/Amsterdam").expect("tzdb bundled");
        // 2026-11-23T13:05:09Z is 14:05:09 in Amsterdam.
        let at = Timestamp(1_795_439_109_000);
        assert_eq!(instant(at, at, &tz), "14:05:09");
        assert_eq!(
            instant(at, Timestamp(at.0 + 86_400_000), &tz),
            "Mon 23 Nov 14:05"
        );
    }
}
