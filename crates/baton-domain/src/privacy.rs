//! Keeping patient data out of the log.
//!
//! Baton records hand-offs between departments, never patients. Everything a
//! person can type into an event is screened here for what looks like a
//! patient identifier: on a hand-off event the `actor`, `event_id`,
//! `handoff_id`, attribute keys and values and the rating comment
//! ([`Event::check_patient_data`](crate::Event::check_patient_data)); on a
//! disruption its `disruption_id`, `actor`, scope keys and values and
//! `reason`
//! ([`DisruptionEvent::check_patient_data`](crate::disruption::DisruptionEvent::check_patient_data)).
//! Every field gets the same rules. (`kind`, `supplier` and `customer` are not screened here:
//! ingest refuses any that the catalog does not list, before this screen.)
//!
//! Each text is first normalised: Unicode NFKC (full-width `１２３` and `＠`,
//! ligatures, circled and superscript digits become what they look like),
//! Unicode dashes become `-`, and invisible format characters (zero-width
//! spaces and joiners, soft hyphens) are dropped. Then it is refused if it
//! holds:
//!
//! - **a long number**: 8 or more digits in a row, with at most two
//!   separators (space `.` `-` `_` `/` `(` `)` `+`) between consecutive
//!   digits (a BSN is 9 digits, hospital record numbers 8 to 10, phone
//!   numbers more). A digit is any character Unicode calls numeric, so
//!   Arabic-Indic or Devanagari digits count as well;
//! - **a date**: `12-05-1980`, `1980-05-12`, `3/4/79`, `1.2.2024`, or a day,
//!   a month name and a year in English or Dutch, in the orders day month
//!   year (`1 jan 1970`, `1st of January 1970`, `01-JAN-1970`, `1 januari
//!   1970`), month day year (`January 1, 1970`, `jan 1 1970`) or year month
//!   day (`1970 jan 1`), joined by spaces, `-`, `/`, `.`, `,`, `_` or
//!   nothing (`01jan1970`). The day is 1 to 31 (`1st`, `2nd`, `1e`, `1ste`
//!   allowed), the year four digits from 1900 to 2099 or two digits (two
//!   only when the month is not `may`, an English word too);
//! - **an e-mail address**, written with `@` or written out: `john.smith at
//!   example dot org`, `[at]`, `(at)`, `[dot]`;
//! - **a name after a title**: a title with a dot followed by any word
//!   (`mr. smith`, `Mr. John Smith`), a title followed by a capitalised word
//!   (`Dhr Bakker`), or an unambiguous title (`mrs`, `mister`, `dhr`,
//!   `mevr`, `mevrouw`, `meneer`) followed by any word. `mr`, `dr`, `ms`
//!   and `mw` alone are also a scanner, a doctor on call and units, so
//!   `the mr scanner` and `300 ms` pass;
//! - **a name after the word patient** (`patiënt`): `patient John Smith`;
//! - **an identifier label**: BSN, MRN, DOB, NHS, SSN, geboortedatum,
//!   patiëntnummer as a word of its own, also glued to digits or joined by
//!   `-` or `_` (`bsn123456789`, `bsn-123456789`, `mrn_4711`, `d.o.b.`).
//!
//! **Machine-made ids.** A canonical UUID (`8-4-4-4-12` hex digits) or a word
//! of 16 or more hex digits with at least one letter `a`-`f` (a digest) is
//! opaque: no rule looks inside it, so `550e8400-e29b-41d4-a716-446655440000`
//! and a SHA-256 pass although they may hold 8 digits in a row. A word here
//! is a maximal run of letters and digits: `bsn0123456789abcdef` is one
//! word, not all hex, and is screened like any text. Everything around an
//! opaque part is screened as usual, so `bsn-<uuid>` is refused (a label)
//! and so is `<uuid>-123456789`. An opaque part can hold no label (their
//! letters are not hex), no numeric date (no separators inside) and no
//! e-mail or name; a digest of digits only is a number and is refused.
//!
//! The screen errs on the side of refusing: an asset number with eight
//! digits in a row is refused too, and should be written with a prefix of
//! fewer digits or split (`pump-7`, `LOINC 2345-7` pass). It catches
//! patient data typed by mistake, not data disguised on purpose. A refusal
//! names the field and what the value looked like, never the value itself
//! (nor an attribute key that looks like patient data), so neither the
//! answer nor a log line repeats it.
//!
//! Pure string inspection: no I/O.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
};

use unicode_normalization::UnicodeNormalization;

use crate::validation::ValidationError;

/// Digits in one run (separators allowed between them) from which a value
/// reads as an identifier or phone number.
pub const MAX_DIGIT_RUN: usize = 7;

/// Shortest word of hex digits that is taken for a digest (and left alone).
pub const MIN_OPAQUE_HEX: usize = 16;

/// What a value looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    LongNumber,
    Date,
    Email,
    NameAfterTitle,
    NameAfterPatient,
    IdentifierLabel,
}

impl Finding {
    pub fn describe(self) -> &'static str {
        match self {
            Finding::LongNumber => {
                "holds a number of 8 or more digits (like a BSN, record or phone number)"
            }
            Finding::Date => "holds a date (like a date of birth)",
            Finding::Email => "holds an e-mail address",
            Finding::NameAfterTitle => "holds a name after a title (Mr., Mrs., Dhr., Mevr., ...)",
            Finding::NameAfterPatient => "holds a name after the word patient",
            Finding::IdentifierLabel => "names a patient identifier (BSN, MRN, date of birth)",
        }
    }
}

/// Titles that precede a person's name, lower case, without the dot.
const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mister", "dr", "dhr", "mevr", "mw", "mevrouw", "meneer", "heer",
];

/// Titles that are nothing but a title: any word after one is a name.
const NAME_TITLES: &[&str] = &["mrs", "mister", "dhr", "mevr", "mevrouw", "meneer"];

/// Words that announce a patient identifier, lower case, without dots.
const LABELS: &[&str] = &[
    "bsn",
    "mrn",
    "dob",
    "nhs",
    "ssn",
    "geboortedatum",
    "patientnummer",
    "patiëntnummer",
];

/// The word before a patient's name.
const PATIENT: &[&str] = &["patient", "patiënt", "patiente", "patiënte"];

/// Month names and their abbreviations, English and Dutch, lower case.
const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "januari",
    "februari",
    "maart",
    "mei",
    "juni",
    "juli",
    "augustus",
    "oktober",
    "jan",
    "feb",
    "mar",
    "mrt",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "okt",
    "nov",
    "dec",
];

/// What may follow a day's digits: `1st`, `2nd`, `3rd`, `4th`, `1e`, `1ste`, `2de`.
const ORDINALS: &[&str] = &["st", "nd", "rd", "th", "e", "ste", "de"];

/// Stands in for an opaque part (UUID, digest): neither letter, digit nor separator.
const OPAQUE: char = '\u{FFFC}';

/// `text` as the screen reads it: NFKC, Unicode dashes as `-`, invisible
/// format characters dropped. ASCII is returned as it is.
pub fn normalize(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.nfkc()
            .filter_map(|c| match c {
                '\u{00AD}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}' => None,
                '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' => {
                    Some('-')
                }
                c => Some(c),
            })
            .collect(),
    )
}

/// The first thing in `text` that looks like patient data, if any.
pub fn screen(text: &str) -> Option<Finding> {
    let normal = normalize(text);
    let mut chars: Vec<char> = normal.chars().collect();
    mask_opaque(&mut chars);
    let tokens = tokens(&chars);
    if has_numeric_date(&chars) || has_month_date(&chars, &tokens) {
        return Some(Finding::Date);
    }
    if has_long_number(&chars) {
        return Some(Finding::LongNumber);
    }
    // The rules below read punctuation only where there is some.
    let marks = |set: &[char]| chars.iter().any(|c| set.contains(c));
    let masked = || chars.iter().collect::<String>();
    if (marks(&['@']) && has_email(&masked()))
        || ((marks(&['@', '[', '(', '{', '<'])
            || tokens.iter().any(|t| t.is_one_of(&chars, &["at"])))
            && has_written_email(&chars))
    {
        return Some(Finding::Email);
    }
    if tokens.iter().any(|t| t.is_one_of(&chars, LABELS))
        || (marks(&['.']) && has_dotted_label(&masked()))
    {
        return Some(Finding::IdentifierLabel);
    }
    names(&chars, &tokens)
}

/// Screens one field a person typed (an id, an actor, a reason, a comment).
pub fn check_text(field: &str, text: &str) -> Result<(), ValidationError> {
    match screen(text) {
        None => Ok(()),
        Some(finding) => Err(refusal(field, finding)),
    }
}

/// Screens attribute keys (against the catalog's list too, when it has
/// one) and values. `field` is `attributes` or `scope`. A key that looks
/// like patient data is refused under `field` without being named; a value
/// under `field[key]`.
pub fn check_attributes(
    field: &str,
    attributes: &BTreeMap<String, String>,
    allowed: Option<&BTreeSet<String>>,
) -> Result<(), ValidationError> {
    for (key, value) in attributes {
        if let Some(finding) = screen(key) {
            return Err(ValidationError::new(
                field,
                format!(
                    "a key {}; patient-identifying data is not accepted",
                    finding.describe()
                ),
            ));
        }
        if let Some(allowed) = allowed {
            if !allowed.contains(key) {
                // Keys passed the token check and the screen, so naming one is safe.
                return Err(ValidationError::new(
                    field,
                    format!("key {key:?} is not one of the catalog's attributes"),
                ));
            }
        }
        if let Some(finding) = screen(value) {
            return Err(refusal(&format!("{field}[{key}]"), finding));
        }
    }
    Ok(())
}

/// `n` written for an id so that the screen accepts it: decimal, with an
/// `x` between groups of six digits counted from the right (`42`,
/// `123456`, `1x234567`, `1x767225x600123`). Never seven digits in a row,
/// so a counter or a time in milliseconds can go into an id as long as a
/// letter or one digit at most stands before it.
pub fn id_number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 6);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(6) {
            out.push('x');
        }
        out.push(c);
    }
    out
}

/// `field[key]`, or just `field` when the key itself looks like patient
/// data: for errors about an attribute's value that must not echo the key.
pub fn keyed_field(field: &str, key: &str) -> String {
    match screen(key) {
        None => format!("{field}[{key}]"),
        Some(_) => field.to_owned(),
    }
}

fn refusal(field: &str, finding: Finding) -> ValidationError {
    ValidationError::new(
        field,
        format!(
            "{}; patient-identifying data is not accepted",
            finding.describe()
        ),
    )
}

/// Replaces every opaque part (a canonical UUID, a hex word of
/// [`MIN_OPAQUE_HEX`] or more digits with a letter) with [`OPAQUE`].
fn mask_opaque(chars: &mut [char]) {
    // Both start with a word of at least 8 hex digits: most texts have none.
    let mut run = 0;
    if !chars.iter().any(|c| {
        run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
        run >= 8
    }) {
        return;
    }
    // Words: maximal runs of letters and digits.
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_alphanumeric() {
                i += 1;
            }
            words.push((start, i));
        } else {
            i += 1;
        }
    }
    let hex = |(s, e): (usize, usize)| chars[s..e].iter().all(char::is_ascii_hexdigit);
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut w = 0;
    while w < words.len() {
        let uuid = words.get(w..w + 5).is_some_and(|five| {
            five.iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(&(s, e), len)| e - s == len && hex((s, e)))
                && five
                    .windows(2)
                    .all(|p| p[1].0 == p[0].1 + 1 && chars[p[0].1] == '-')
        });
        if uuid {
            spans.push((words[w].0, words[w + 4].1));
            w += 5;
            continue;
        }
        let (s, e) = words[w];
        if e - s >= MIN_OPAQUE_HEX
            && hex((s, e))
            && chars[s..e].iter().any(char::is_ascii_alphabetic)
        {
            spans.push((s, e));
        }
        w += 1;
    }
    for (s, e) in spans {
        chars[s..e].fill(OPAQUE);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Letters,
    Digits,
}

/// A maximal run of letters, or of digits.
#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

impl Tok {
    fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the token, in lower case, is one of `words`.
    fn is_one_of(&self, chars: &[char], words: &[&str]) -> bool {
        if self.kind != Kind::Letters {
            return false;
        }
        let run = &chars[self.start..self.end];
        // The common case, an ASCII word no longer than any listed: lower
        // case it once and compare bytes.
        let mut buf = [0u8; 16];
        if run.len() <= buf.len() && run.iter().all(char::is_ascii) {
            for (b, c) in buf.iter_mut().zip(run) {
                *b = c.to_ascii_lowercase() as u8;
            }
            let lower = &buf[..run.len()];
            return words.iter().any(|w| w.as_bytes() == lower);
        }
        words.iter().any(|w| lower_eq(run, w))
    }
}

fn lower_eq(chars: &[char], word: &str) -> bool {
    if chars.iter().all(char::is_ascii) {
        // An ASCII run equals only an ASCII word of the same length.
        return chars.len() == word.len()
            && chars
                .iter()
                .zip(word.bytes())
                .all(|(c, b)| c.to_ascii_lowercase() as u32 == u32::from(b));
    }
    let mut lower = chars.iter().flat_map(|c| c.to_lowercase());
    let mut word = word.chars();
    loop {
        match (lower.next(), word.next()) {
            (None, None) => return true,
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

fn tokens(chars: &[char]) -> Vec<Tok> {
    let kind = |c: char| {
        if c.is_numeric() {
            Some(Kind::Digits)
        } else if c.is_alphabetic() {
            Some(Kind::Letters)
        } else {
            None
        }
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match kind(chars[i]) {
            Some(k) => {
                let start = i;
                while i < chars.len() && kind(chars[i]) == Some(k) {
                    i += 1;
                }
                out.push(Tok {
                    kind: k,
                    start,
                    end: i,
                });
            }
            None => i += 1,
        }
    }
    out
}

/// Eight or more digits with at most two separators between consecutive digits.
fn has_long_number(chars: &[char]) -> bool {
    let mut digits = 0;
    let mut gap = 0;
    for &c in chars {
        if c.is_numeric() {
            digits += 1;
            gap = 0;
            if digits > MAX_DIGIT_RUN {
                return true;
            }
        } else if digits > 0
            && gap < 2
            && matches!(c, ' ' | '.' | '-' | '_' | '/' | '(' | ')' | '+')
        {
            gap += 1;
        } else {
            digits = 0;
            gap = 0;
        }
    }
    false
}

/// `d{1,2}<s>d{1,2}<s>d{2,4}` or `d{4}<s>d{1,2}<s>d{1,2}` with one separator
/// `s` of `-`, `/` or `.`, whose day and month could be a day and a month
/// (either order for the first shape): `2-0-10` is no date, `2-1-10` is.
fn has_numeric_date(chars: &[char]) -> bool {
    let day = |v: Option<u32>| v.is_none_or(|v| (1..=31).contains(&v));
    let month = |v: Option<u32>| v.is_none_or(|v| (1..=12).contains(&v));
    (0..chars.len()).any(|i| {
        chars[i].is_numeric()
            && (i == 0 || !chars[i - 1].is_numeric())
            && digit_groups(&chars[i..]).is_some_and(|[(a, x), (b, y), (c, _)]| {
                ((1..=2).contains(&a)
                    && (1..=2).contains(&b)
                    && (2..=4).contains(&c)
                    && ((day(x) && month(y)) || (month(x) && day(y))))
                    || (a == 4 && (1..=2).contains(&b) && (1..=2).contains(&c) && month(y))
            })
    })
}

/// The lengths and values (`None`: a numeral that is not an ASCII digit) of
/// three digit groups joined by one repeated separator at the start of
/// `chars`, if they are there.
fn digit_groups(chars: &[char]) -> Option<[(usize, Option<u32>); 3]> {
    let mut groups = [(0usize, None); 3];
    let mut separator = None;
    let mut at = 0;
    for (n, group) in groups.iter_mut().enumerate() {
        let start = at;
        while at < chars.len() && chars[at].is_numeric() {
            at += 1;
        }
        let digits = &chars[start..at];
        *group = (
            digits.len(),
            digits.iter().try_fold(0u32, |v, c| {
                c.to_digit(10)
                    .map(|d| v.saturating_mul(10).saturating_add(d))
            }),
        );
        if group.0 == 0 {
            return None;
        }
        if n < 2 {
            let s = *chars.get(at)?;
            if !matches!(s, '-' | '/' | '.') || separator.is_some_and(|p| p != s) {
                return None;
            }
            separator = Some(s);
            at += 1;
        }
    }
    Some(groups)
}

/// One part of a written date, as far as it can tell.
#[derive(Debug, Clone, Copy)]
struct DatePart {
    start: usize,
    end: usize,
    day: bool,
    year2: bool,
    year4: bool,
    month: bool,
    /// The month is `may`, which is an English word as well.
    may: bool,
    of: bool,
}

/// A day, a month name and a year in one of the orders D M Y, M D Y, Y M D.
fn has_month_date(chars: &[char], tokens: &[Tok]) -> bool {
    if !tokens.iter().any(|t| t.is_one_of(chars, MONTHS)) {
        return false;
    }
    let mut parts: Vec<DatePart> = Vec::with_capacity(tokens.len());
    for tok in tokens {
        // `1st`, `2nd`, `1e`: the suffix belongs to the day before it.
        if let Some(last) = parts.last_mut() {
            if last.day && last.end == tok.start && tok.is_one_of(chars, ORDINALS) {
                last.end = tok.end;
                last.year2 = false;
                continue;
            }
        }
        let digits = &chars[tok.start..tok.end];
        // The value of a short run of ASCII digits; `None` for other digits.
        let value = (digits.len() <= 4)
            .then(|| {
                digits
                    .iter()
                    .try_fold(0u32, |v, c| Some(v * 10 + c.to_digit(10)?))
            })
            .flatten();
        let number = tok.kind == Kind::Digits;
        parts.push(DatePart {
            start: tok.start,
            end: tok.end,
            day: number && tok.len() <= 2 && value.is_none_or(|v| (1..=31).contains(&v)),
            year2: number && tok.len() == 2,
            year4: number && tok.len() == 4 && value.is_none_or(|v| (1900..=2099).contains(&v)),
            month: tok.is_one_of(chars, MONTHS),
            may: tok.is_one_of(chars, &["may"]),
            of: tok.is_one_of(chars, &["of"]),
        });
    }
    // Joined by a few separators, or glued.
    let joined = |a: &DatePart, b: &DatePart| {
        let gap = &chars[a.end..b.start];
        gap.len() <= 3
            && gap
                .iter()
                .all(|c| c.is_whitespace() || matches!(c, '-' | '/' | '.' | ',' | '_'))
    };
    let year = |y: &DatePart, m: &DatePart| y.year4 || (y.year2 && !m.may);
    (0..parts.len()).any(|i| {
        let p = &parts[i..];
        let three = |a: usize, b: usize, c: usize| {
            p.get(c).is_some() && joined(&p[a], &p[b]) && joined(&p[b], &p[c])
        };
        // D M Y, D of M Y
        let dmy = p[0].day
            && ((three(0, 1, 2) && p[1].month && year(&p[2], &p[1]))
                || (p.len() > 3
                    && p[1].of
                    && joined(&p[0], &p[1])
                    && three(1, 2, 3)
                    && p[2].month
                    && year(&p[3], &p[2])));
        // M D Y
        let mdy = p[0].month && three(0, 1, 2) && p[1].day && year(&p[2], &p[0]);
        // Y M D
        let ymd = p[0].year4 && three(0, 1, 2) && p[1].month && p[2].day;
        dmy || mdy || ymd
    })
}

/// `x@y.z`: something before an `@`, and a dot with something on both sides after it.
fn has_email(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '<' | '>' | '(' | ')'))
        .any(|word| {
            let Some((local, domain)) = word.split_once('@') else {
                return false;
            };
            let domain = domain.trim_end_matches('.');
            !local.is_empty()
                && domain
                    .split_once('.')
                    .is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty())
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mail {
    /// A word; `tld` if it could end a domain (2 to 6 letters).
    Word {
        tld: bool,
    },
    At,
    Dot,
    Other,
}

/// An address written out: `name at host dot org`, `name [at] host.org`,
/// `name(at)host(dot)org`.
fn has_written_email(chars: &[char]) -> bool {
    let lower: Vec<char> = chars.iter().flat_map(|c| c.to_lowercase()).collect();
    spells_address(&mail_marks(&lower))
}

/// A character a word of an address may hold.
fn is_mail_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '%' | '+' | '-')
}

/// The lowercased text as the marks an address is made of: words, `at`s,
/// dots and anything else; whitespace is dropped.
fn mail_marks(chars: &[char]) -> Vec<Mail> {
    let mut marks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (mark, len) = next_mark(chars, i);
        marks.extend(mark);
        i += len;
    }
    marks
}

/// The mark starting at `chars[i]` (none for whitespace), and how many
/// characters it takes.
fn next_mark(chars: &[char], i: usize) -> (Option<Mail>, usize) {
    let c = chars[i];
    if matches!(c, '[' | '(' | '{' | '<') {
        return match bracketed_mark(chars, i) {
            Some((mark, len)) => (Some(mark), len),
            None => (Some(Mail::Other), 1),
        };
    }
    if c == '@' {
        return (Some(Mail::At), 1);
    }
    if c == '.' {
        // A dot inside a word (`example.org`), not one ending a sentence.
        let glued = i > 0
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        return (Some(if glued { Mail::Dot } else { Mail::Other }), 1);
    }
    if is_mail_word_char(c) {
        let len = chars[i..]
            .iter()
            .take_while(|&&d| is_mail_word_char(d))
            .count();
        return (Some(word_mark(&chars[i..i + len])), len);
    }
    ((!c.is_whitespace()).then_some(Mail::Other), 1)
}

/// `[at]`, `( dot )`: a short word in the brackets opening at `chars[open]`,
/// closed within a few characters; and how many characters it takes.
fn bracketed_mark(chars: &[char], open: usize) -> Option<(Mail, usize)> {
    let close = match chars[open] {
        '[' => ']',
        '(' => ')',
        '{' => '}',
        _ => '>',
    };
    let len = chars[open + 1..]
        .iter()
        .take(8)
        .take_while(|&&d| d != close)
        .count();
    if chars.get(open + 1 + len) != Some(&close) {
        return None;
    }
    let inner: String = chars[open + 1..open + 1 + len]
        .iter()
        .filter(|d| !d.is_whitespace())
        .collect();
    let mark = match inner.as_str() {
        "at" => Mail::At,
        "dot" => Mail::Dot,
        _ => return None,
    };
    Some((mark, len + 2))
}

/// A word: `at` and `dot` spelt out, or a word of the address.
fn word_mark(word: &[char]) -> Mail {
    match word {
        ['a', 't'] => Mail::At,
        ['d', 'o', 't'] => Mail::Dot,
        _ => Mail::Word {
            tld: (2..=6).contains(&word.len()) && word.iter().all(|c| c.is_alphabetic()),
        },
    }
}

/// word AT word (DOT word)+, the last word a top-level domain.
fn spells_address(marks: &[Mail]) -> bool {
    (0..marks.len()).any(|i| {
        if !matches!(marks[i], Mail::Word { .. })
            || marks.get(i + 1) != Some(&Mail::At)
            || !matches!(marks.get(i + 2), Some(Mail::Word { .. }))
        {
            return false;
        }
        let mut j = i + 2;
        while marks.get(j + 1) == Some(&Mail::Dot) {
            match marks.get(j + 2) {
                Some(Mail::Word { tld: true }) => return true,
                Some(Mail::Word { tld: false }) => j += 2,
                _ => return false,
            }
        }
        false
    })
}

/// A label written with dots (`d.o.b.`); a label without dots is a token
/// of its own (`BSN`, `bsn123456789`, `mrn_4711`).
fn has_dotted_label(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '(' | ')' | '/'))
        .filter(|word| word.contains('.'))
        .any(|word| {
            let bare: Vec<char> = word.chars().filter(|c| *c != '.').collect();
            LABELS.iter().any(|label| lower_eq(&bare, label))
        })
}

/// A name after a title, or after the word patient.
fn names(chars: &[char], tokens: &[Tok]) -> Option<Finding> {
    for (i, tok) in tokens.iter().enumerate() {
        let Some(next) = tokens.get(i + 1).filter(|n| n.kind == Kind::Letters) else {
            continue;
        };
        let gap = &chars[tok.end..next.start];
        let spaced = !gap.is_empty()
            && gap
                .iter()
                .all(|c| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '(' | ')' | '/'));
        let capital = chars[next.start].is_uppercase();
        if tok.is_one_of(chars, TITLES) {
            // `300 ms`, `5 mw`: a unit after a number, not a title.
            let unit = i > 0
                && tokens[i - 1].kind == Kind::Digits
                && chars[tokens[i - 1].end..tok.start]
                    .iter()
                    .all(|c| c.is_whitespace());
            let dotted = gap.iter().filter(|c| **c == '.').count() == 1
                && gap.iter().all(|c| *c == '.' || c.is_whitespace());
            if !unit && (dotted || (spaced && (capital || tok.is_one_of(chars, NAME_TITLES)))) {
                return Some(Finding::NameAfterTitle);
            }
        }
        if tok.is_one_of(chars, PATIENT) && spaced && capital {
            return Some(Finding::NameAfterPatient);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn refuses_what_looks_like_patient_data() {
        for (text, finding) in [
            ("123456782", Finding::LongNumber),
            ("bsn 1234.56.782", Finding::LongNumber),
            ("call 06-12345678", Finding::LongNumber),
            ("+31 20 123 45 67", Finding::LongNumber),
            ("(020) 555 1234", Finding::LongNumber),
            ("record 12345678", Finding::LongNumber),
            ("born 12-05-1980", Finding::Date),
            ("3/4/79", Finding::Date),
            ("1980-05-12", Finding::Date),
            ("seen 1.2.2024", Finding::Date),
            ("mail j.jansen@example.org please", Finding::Email),
            ("<a@b.nl>", Finding::Email),
            ("Mr. Jansen waited an hour", Finding::NameAfterTitle),
            ("for mevr. De Vries", Finding::NameAfterTitle),
            ("Dhr Bakker", Finding::NameAfterTitle),
            ("mrs J. Smith", Finding::NameAfterTitle),
            ("BSN unknown", Finding::IdentifierLabel),
            ("d.o.b. on file", Finding::IdentifierLabel),
        ] {
            assert_eq!(screen(text), Some(finding), "{text:?}");
        }
    }

    /// Every format the issue listed as accepted before, and their kin.
    #[test]
    fn refuses_the_formats_that_used_to_pass() {
        for (text, finding) in [
            // Dates with month names, English and Dutch.
            ("DOB 1970-01-01", Finding::Date),
            ("1 jan 1970", Finding::Date),
            ("January 1, 1970", Finding::Date),
            ("1 januari 1970", Finding::Date),
            ("jan 1 1970", Finding::Date),
            ("born 1st of January 1970", Finding::Date),
            ("01-JAN-1970", Finding::Date),
            ("01jan1970", Finding::Date),
            ("3 mrt. 1985", Finding::Date),
            ("1e mei 1970", Finding::Date),
            ("12 okt 85", Finding::Date),
            ("1970 jan 1", Finding::Date),
            ("May 12, 1970", Finding::Date),
            // Labels glued to digits, or joined by - or _.
            ("bsn123456789", Finding::LongNumber),
            ("bsn-123456789", Finding::LongNumber),
            ("mrn_4711", Finding::IdentifierLabel),
            ("BSN-4711", Finding::IdentifierLabel),
            ("ward-5-dob", Finding::IdentifierLabel),
            // Titles before a name, whatever the case.
            ("mr. smith", Finding::NameAfterTitle),
            ("Mr. John Smith", Finding::NameAfterTitle),
            ("mr.smith", Finding::NameAfterTitle),
            ("mevrouw de vries", Finding::NameAfterTitle),
            ("ask dhr bakker", Finding::NameAfterTitle),
            // patient + a capitalised word.
            ("patient John Smith", Finding::NameAfterPatient),
            ("Patiënt Jansen", Finding::NameAfterPatient),
            ("patie\u{0308}nt Jansen", Finding::NameAfterPatient),
            ("patient: Smith", Finding::NameAfterPatient),
            // E-mail written out.
            ("john.smith at example dot org", Finding::Email),
            ("john.smith [at] example [dot] org", Finding::Email),
            ("john(at)example(dot)org", Finding::Email),
            ("john {at} mail.example.nl", Finding::Email),
            ("JOHN AT EXAMPLE DOT ORG", Finding::Email),
            ("john.smith@example.org", Finding::Email),
            // Full-width and other digits, full-width @, hidden characters.
            (
                "\u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff15}\u{ff16}\u{ff17}\u{ff18}\u{ff19}",
                Finding::LongNumber,
            ),
            (
                "\u{0661}\u{0662}\u{0663}\u{0664}\u{0665}\u{0666}\u{0667}\u{0668}\u{0669}",
                Finding::LongNumber,
            ),
            (
                "\u{0967}\u{0968}\u{0969}\u{096a}\u{096b}\u{096c}\u{096d}\u{096e}",
                Finding::LongNumber,
            ),
            (
                "\u{2460}\u{2461}\u{2462}\u{2463}\u{2464}\u{2465}\u{2466}\u{2467}",
                Finding::LongNumber,
            ),
            ("1234\u{200b}5678", Finding::LongNumber),
            ("john\u{ff20}example.org", Finding::Email),
            ("b\u{00ad}sn known", Finding::IdentifierLabel),
            ("\u{ff11}\u{ff12}\u{ff0d}05\u{2010}1980", Finding::Date),
            ("1970\u{2013}01\u{2013}01", Finding::Date),
        ] {
            assert_eq!(screen(text), Some(finding), "{text:?}");
        }
    }

    #[test]
    fn lets_service_talk_through() {
        for text in [
            "",
            "pump-7",
            "LOINC 2345-7",
            "troponin",
            "chemistry analyzer down",
            "lift 2 out of order until 14:30",
            "fast and friendly, thanks",
            "the mr scanner is down",
            "dr on call was quick",
            "room 4.12",
            "cartridge 1234567",
            "ward 5 to lab, 3 samples",
            "version 1.2",
            "a @ b",
            "desk-7",
            "test-system",
            "waited 300 ms. Then it came",
            "patient transport was late",
            "the patient waited",
            "arrived at ward 5. Thanks",
            "seen at 14.30 by the lab",
            "may 5 samples go together",
            "jan is on call",
            "since march",
            "sept 2024 audit",
            "de heer die belde",
            "\u{00e9}\u{00e9}n monster, geen naam",
            "\u{ff50}\u{ff55}\u{ff4d}\u{ff50}-7",
            "550e8400-e29b-41d4-a716-446655440000",
            "h-550E8400-E29B-41D4-A716-446655440000-requested",
            "sha-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
            "sepsis-kfbjdoamoeaa-antibiotics",
            "sim-1234567d0-h42-requested",
        ] {
            assert_eq!(screen(text), None, "{text:?}");
        }
    }

    #[test]
    fn three_numbers_are_a_date_only_when_they_could_be_one() {
        for date in [
            "2-1-10",
            "12-05-1980",
            "31/12/99",
            "5.13.2024",
            "2026-12-04",
        ] {
            assert_eq!(screen(date), Some(Finding::Date), "{date}");
        }
        // No day 0, no month 0 or 13 in either order: machine ids, not dates.
        for id in ["p2-0-10-e0", "run-0-0-17", "13-13-26", "v1.40.20"] {
            assert_eq!(screen(id), None, "{id}");
        }
    }

    #[test]
    fn an_opaque_part_hides_nothing_around_it() {
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        for (text, finding) in [
            (format!("bsn-{uuid}"), Finding::IdentifierLabel),
            (format!("{uuid}-123456789"), Finding::LongNumber),
            (format!("{uuid} 1970-01-01"), Finding::Date),
            (format!("{uuid}@example.org"), Finding::Email),
            // Not a word of hex: screened as text.
            ("bsn0123456789abcdef".to_owned(), Finding::LongNumber),
            ("x0123456789abcdefg".to_owned(), Finding::LongNumber),
            // A digest of digits only is a number.
            ("0123456789012345".to_owned(), Finding::LongNumber),
            // Not a canonical UUID: five groups, wrong lengths.
            (
                "550e8400-e29b-41d4-a716-44665544000".to_owned(),
                Finding::LongNumber,
            ),
        ] {
            assert_eq!(screen(&text), Some(finding), "{text:?}");
        }
    }

    #[test]
    fn attributes_outside_the_catalogs_list_are_named() {
        let allowed: BTreeSet<String> = ["asset".to_owned(), "test".to_owned()].into();
        let attrs = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert_eq!(
            check_attributes("attributes", &attrs("asset", "pump-7"), Some(&allowed)),
            Ok(())
        );
        let err = check_attributes("attributes", &attrs("patient", "x"), Some(&allowed))
            .expect_err("unknown key");
        assert_eq!(err.field, "attributes");
        assert!(err.reason.contains("\"patient\""), "{err}");
        assert_eq!(
            check_attributes("attributes", &attrs("patient", "x"), None),
            Ok(())
        );
        let err =
            check_attributes("scope", &attrs("asset", "123456789"), None).expect_err("identifier");
        assert_eq!(err.field, "scope[asset]");
        assert!(!err.to_string().contains("123456789"), "{err}");
    }

    #[test]
    fn a_key_that_looks_like_patient_data_is_refused_unnamed() {
        let allowed: BTreeSet<String> = ["asset".to_owned()].into();
        for key in ["bsn123456789", "bsn", "dob-1970-01-01"] {
            let attrs = BTreeMap::from([(key.to_owned(), "x".to_owned())]);
            for list in [None, Some(&allowed)] {
                let err = check_attributes("attributes", &attrs, list).expect_err(key);
                assert_eq!(err.field, "attributes");
                assert!(err.reason.starts_with("a key "), "{err}");
                assert!(!err.to_string().contains(key), "{err}");
            }
        }
        assert_eq!(keyed_field("attributes", "asset"), "attributes[asset]");
        assert_eq!(keyed_field("attributes", "bsn123456789"), "attributes");
    }

    #[test]
    fn numbers_for_ids_read_back_and_pass() {
        for (n, written) in [
            (0, "0"),
            (42, "42"),
            (123_456, "123456"),
            (1_234_567, "1x234567"),
            (1_767_225_600_123, "1x767225x600123"),
        ] {
            assert_eq!(id_number(n), written);
        }
    }

    fn hex(bytes: &[u8], upper: bool) -> String {
        bytes
            .iter()
            .map(|b| {
                if upper {
                    format!("{b:02X}")
                } else {
                    format!("{b:02x}")
                }
            })
            .collect()
    }

    fn uuid(bytes: &[u8; 16], upper: bool) -> String {
        let h = hex(bytes, upper);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    /// Ids around an opaque part, as systems make them.
    fn id_around(prefix: &str, opaque: &str, suffix: &str) -> String {
        [prefix, opaque, suffix]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    }

    proptest! {
        #[test]
        fn any_number_for_an_id_passes(n in any::<u64>(), before in "[a-z]{1,8}-([0-9]-)?[a-z]") {
            prop_assume!(!before.split('-').any(|w| LABELS.contains(&w)));
            let written = id_number(n);
            prop_assert_eq!(written.replace('x', "").parse::<u64>().ok(), Some(n));
            let id = format!("{before}{written}");
            prop_assert_eq!(screen(&id), None, "{}", id);
        }

        #[test]
        fn never_panics(text in any::<String>()) {
            let _ = screen(&text);
        }

        #[test]
        fn plain_words_pass(text in "[a-z ,!?'-]{0,120}") {
            // No digits, no @, no capitalised word after a title, no label.
            prop_assume!(!text
                .split(|c: char| !c.is_ascii_alphabetic())
                .any(|w| LABELS.contains(&w) || NAME_TITLES.contains(&w)));
            prop_assert_eq!(screen(&text), None);
        }

        #[test]
        fn random_uuids_pass(
            bytes in any::<[u8; 16]>(),
            upper in any::<bool>(),
            prefix in "([a-z]{1,8}(-[0-9]{1,3})?)?",
            suffix in "(requested|ack|e[0-9]{1,4})?",
        ) {
            prop_assume!(!prefix.split('-').any(|w| LABELS.contains(&w)));
            let id = id_around(&prefix, &uuid(&bytes, upper), &suffix);
            prop_assert_eq!(screen(&id), None, "{}", id);
        }

        #[test]
        fn random_hex_digests_pass(
            bytes in proptest::collection::vec(any::<u8>(), 8..=32),
            upper in any::<bool>(),
            prefix in "([a-z]{1,8})?",
            suffix in "([a-z]{1,8})?",
        ) {
            prop_assume!(!LABELS.contains(&prefix.as_str()) && !LABELS.contains(&suffix.as_str()));
            let digest = hex(&bytes, upper);
            // A "digest" of digits only is a number: the rule refuses it.
            prop_assume!(digest.chars().any(|c| c.is_ascii_alphabetic()));
            let id = id_around(&prefix, &digest, &suffix);
            prop_assert_eq!(screen(&id), None, "{}", id);
        }

        #[test]
        fn an_id_with_a_label_and_8_or_9_digits_is_refused(
            prefix in "([a-z0-9]{1,6}[-_])?",
            label in prop::sample::select(LABELS.to_vec()),
            upper in any::<bool>(),
            joint in prop::sample::select(vec!["", "-", "_", " ", ": ", "--"]),
            digits in "[0-9]{8,9}",
            suffix in "([-_][a-z0-9]{1,6})?",
        ) {
            let label = if upper { label.to_uppercase() } else { label.to_owned() };
            let id = format!("{prefix}{label}{joint}{digits}{suffix}");
            prop_assert!(screen(&id).is_some(), "{}", id);
        }

        #[test]
        fn a_long_number_anywhere_is_refused(
            before in "[a-z ]{0,40}",
            digits in "[0-9]{8,10}",
            after in "[a-z ]{0,40}",
        ) {
            let text = format!("{before} {digits} {after}");
            prop_assert_eq!(screen(&text), Some(Finding::LongNumber));
        }

        #[test]
        fn full_width_digits_are_digits(digits in "[0-9]{8,10}") {
            let wide: String = digits
                .chars()
                .map(|c| char::from_u32(c as u32 - '0' as u32 + 0xFF10).unwrap_or(c))
                .collect();
            prop_assert_eq!(screen(&wide), Some(Finding::LongNumber));
        }

        #[test]
        fn a_date_anywhere_is_refused(
            before in "[a-z ]{0,40}",
            d in 1u32..=31, m in 1u32..=12, y in 1900u32..=2030,
            sep in prop::sample::select(vec!['-', '/', '.']),
            iso in any::<bool>(),
            after in "[a-z ]{0,40}",
        ) {
            let date = if iso { format!("{y}{sep}{m:02}{sep}{d:02}") } else { format!("{d}{sep}{m}{sep}{y}") };
            let text = format!("{before} {date} {after}");
            prop_assert!(screen(&text).is_some(), "{}", text);
        }

        #[test]
        fn a_date_with_a_month_name_is_refused(
            before in "[a-z ]{0,30}",
            d in 1u32..=31,
            month in prop::sample::select(MONTHS.to_vec()),
            capital in any::<bool>(),
            y in 1900u32..=2099,
            order in 0usize..3,
            sep in prop::sample::select(vec![" ", "-", "/", ". ", ", ", ""]),
            after in "[a-z ]{0,30}",
        ) {
            // Glued, month day year runs day and year together: not a date.
            let sep = if order == 1 && sep.is_empty() { " " } else { sep };
            let month = if capital { month.to_uppercase() } else { month.to_owned() };
            let date = match order {
                0 => format!("{d}{sep}{month}{sep}{y}"),
                1 => format!("{month}{sep}{d}{sep}{y}"),
                _ => format!("{y}{sep}{month}{sep}{d}"),
            };
            let text = format!("{before} {date} {after}");
            prop_assert_eq!(screen(&text), Some(Finding::Date), "{}", text);
        }

        #[test]
        fn an_email_anywhere_is_refused(
            local in "[a-z0-9._]{1,20}", host in "[a-z0-9-]{1,20}", tld in "[a-z]{2,6}",
            before in "[a-z ]{0,40}",
        ) {
            let text = format!("{before} {local}@{host}.{tld} thanks");
            prop_assert!(screen(&text).is_some(), "{}", text);
        }

        #[test]
        fn an_email_written_out_is_refused(
            local in "[a-z][a-z_]{0,10}(\\.[a-z]{1,8})?",
            host in "[a-z]([a-z-]{0,10}[a-z])?",
            tld in "[a-z]{2,6}",
            at in prop::sample::select(vec![" at ", " [at] ", "(at)", " (at) ", "@", " AT "]),
            dot in prop::sample::select(vec![" dot ", " [dot] ", "(dot)", ".", " DOT "]),
        ) {
            // `at` and `dot` are the written-out marks, not names.
            prop_assume!(![host.as_str(), tld.as_str()]
                .into_iter()
                .chain(local.split('.'))
                .any(|w| w == "at" || w == "dot"));
            let text = format!("mail {local}{at}{host}{dot}{tld} please");
            prop_assert_eq!(screen(&text), Some(Finding::Email), "{}", text);
        }

        #[test]
        fn a_name_after_a_title_is_refused(
            title in prop::sample::select(TITLES.to_vec()),
            dot in any::<bool>(),
            name in "[A-Z][a-z]{1,12}",
            before in "[a-z ]{0,40}",
        ) {
            let text = format!("{before} {title}{} {name} waited", if dot { "." } else { "" });
            prop_assert!(screen(&text).is_some(), "{}", text);
        }

        #[test]
        fn a_title_with_a_dot_names_whatever_follows(
            title in prop::sample::select(TITLES.to_vec()),
            capital in any::<bool>(),
            name in "[a-z]{2,12}",
        ) {
            prop_assume!(!LABELS.contains(&name.as_str()));
            let title = if capital { format!("{}{}", title[..1].to_uppercase(), &title[1..]) } else { title.to_owned() };
            let text = format!("for {title}. {name}");
            prop_assert_eq!(screen(&text), Some(Finding::NameAfterTitle), "{}", text);
        }
    }
}
