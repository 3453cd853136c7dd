//! iCalendar (RFC 5545) export of a meeting, so that it lands in people's calendars.

use time::OffsetDateTime;
use time::macros::format_description;

/// What goes into the calendar entry.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    /// The meeting's id: the entry's identity, stable across edits.
    pub id: i64,
    /// Host name for the UID (`meeting-<id>@<host>`).
    pub host: &'a str,
    /// Title.
    pub title: &'a str,
    /// Agenda.
    pub agenda: &'a str,
    /// Official document reference of the invitation.
    pub document_ref: &'a str,
    /// Start, Unix seconds.
    pub starts_at: i64,
    /// End, Unix seconds.
    pub ends_at: i64,
    /// Whether it has been called off.
    pub cancelled: bool,
    /// Edits so far (SEQUENCE), so calendars take the newest.
    pub sequence: i64,
    /// When this export was made, Unix seconds.
    pub now: i64,
}

fn utc(t: i64) -> String {
    let format = format_description!("[year][month][day]T[hour][minute][second]Z");
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "19700101T000000Z".into())
}

/// Escapes TEXT per RFC 5545 3.3.11.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Folds a content line at 75 octets without splitting a UTF-8 character (RFC 5545 3.1).
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
}

/// The calendar, CRLF line endings, folded.
pub fn calendar(event: &Event) -> String {
    let mut description = event.agenda.to_string();
    if !event.document_ref.is_empty() {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str("Văn bản: ");
        description.push_str(event.document_ref);
    }
    let lines = [
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".into(),
        "PRODID:-//meeting-room bridge//EN".into(),
        "METHOD:PUBLISH".into(),
        "BEGIN:VEVENT".into(),
        format!("UID:meeting-{}@{}", event.id, escape(event.host)),
        format!("DTSTAMP:{}", utc(event.now)),
        format!("SEQUENCE:{}", event.sequence),
        format!("DTSTART:{}", utc(event.starts_at)),
        format!("DTEND:{}", utc(event.ends_at)),
        format!("SUMMARY:{}", escape(event.title)),
        format!("DESCRIPTION:{}", escape(&description)),
        format!(
            "STATUS:{}",
            if event.cancelled {
                "CANCELLED"
            } else {
                "CONFIRMED"
            }
        ),
        "END:VEVENT".into(),
        "END:VCALENDAR".into(),
    ];
    let mut out = String::new();
    for line in &lines {
        fold(line, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(title: &'a str, agenda: &'a str) -> Event<'a> {
        Event {
            id: 7,
            host: "bridge.local",
            title,
            agenda,
            document_ref: "123/GM-UBND",
            starts_at: 1_796_173_200,
            ends_at: 1_796_180_400,
            cancelled: false,
            sequence: 2,
            now: 1_795_000_000,
        }
    }

    #[test]
    fn times_are_utc_and_text_is_escaped() {
        let cal = calendar(&event("Họp; giao ban, tháng 12", "1. Báo cáo\n2. Ý kiến\\"));
        assert!(cal.contains("DTSTART:20261202T010000Z\r\n"), "{cal}");
        assert!(cal.contains("DTEND:20261202T030000Z\r\n"), "{cal}");
        assert!(
            cal.contains("SUMMARY:Họp\\; giao ban\\, tháng 12\r\n"),
            "{cal}"
        );
        assert!(cal.contains("1. Báo cáo\\n2. Ý kiến\\\\"), "{cal}");
        assert!(cal.contains("UID:meeting-7@bridge.local\r\n"));
        assert!(cal.contains("SEQUENCE:2\r\n"));
        assert!(cal.ends_with("END:VCALENDAR\r\n"));
        assert!(
            !cal.replace("\r\n", "").contains('\n'),
            "bare LF in {cal:?}"
        );
    }

    #[test]
    fn long_lines_fold_at_75_octets_between_characters() {
        let title =
            "Hội nghị trực tuyến toàn tỉnh về công tác chuyển đổi số năm 2026 🇻🇳 và kế hoạch";
        let cal = calendar(&event(title, ""));
        for line in cal.split("\r\n") {
            assert!(line.len() <= 75, "{line:?} is {} octets", line.len());
        }
        let unfolded = cal.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("SUMMARY:{title}")));
    }
}
