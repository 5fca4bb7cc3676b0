//! Keeping patient data out of the log.
//!
//! Baton records hand-offs between departments, never patients. Everything a
//! client can write as text (attribute values, disruption scopes and
//! reasons, rating comments) is screened here for what looks like a patient
//! identifier: a long number (a BSN is 9 digits, hospital record numbers 8
//! to 10, phone numbers more), a date (of birth), an e-mail address, or a
//! name after a title ("Mr. Jansen", "mevr. De Vries"). And when the catalog
//! lists its attribute keys, a key it does not list is refused.
//!
//! The screen errs on the side of refusing: an asset number with eight
//! digits in a row is refused too, and should be written with a prefix of
//! fewer digits or split (`pump-7`, `LOINC 2345-7` pass). A refusal names
//! the field and what the value looked like, never the value itself, so
//! neither the answer nor a log line repeats it.
//!
//! Pure string inspection: no I/O, no allocation beyond the error.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::ValidationError;

/// Digits in one run (separators allowed between them) from which a value
/// reads as an identifier or phone number.
pub const MAX_DIGIT_RUN: usize = 7;

/// What a value looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    LongNumber,
    Date,
    Email,
    NameAfterTitle,
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
            Finding::IdentifierLabel => "names a patient identifier (BSN, MRN, date of birth)",
        }
    }
}

/// Titles that precede a person's name, lower case, without the dot.
const TITLES: &[&str] = &[
    "mr", "mrs", "ms", "miss", "mister", "dr", "dhr", "mevr", "mw", "mevrouw", "meneer", "heer",
];

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

/// The first thing in `text` that looks like patient data, if any.
pub fn screen(text: &str) -> Option<Finding> {
    if has_date(text) {
        return Some(Finding::Date);
    }
    if has_long_number(text) {
        return Some(Finding::LongNumber);
    }
    if has_email(text) {
        return Some(Finding::Email);
    }
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '(' | ')' | '/'))
        .filter(|w| !w.is_empty())
        .collect();
    for (i, word) in words.iter().enumerate() {
        let bare: String = word
            .chars()
            .filter(|c| *c != '.')
            .flat_map(char::to_lowercase)
            .collect();
        if LABELS.contains(&bare.as_str()) {
            return Some(Finding::IdentifierLabel);
        }
        if TITLES.contains(&bare.as_str()) {
            let next = words.get(i + 1).and_then(|w| w.chars().next());
            if next.is_some_and(char::is_uppercase) {
                return Some(Finding::NameAfterTitle);
            }
        }
    }
    None
}

/// Screens one free-text field (a reason, a comment).
pub fn check_text(field: &str, text: &str) -> Result<(), ValidationError> {
    match screen(text) {
        None => Ok(()),
        Some(finding) => Err(refusal(field, finding)),
    }
}

/// Screens attribute keys against the catalog's list (when it has one) and
/// every value. `field` is `attributes` or `scope`.
pub fn check_attributes(
    field: &str,
    attributes: &BTreeMap<String, String>,
    allowed: Option<&BTreeSet<String>>,
) -> Result<(), ValidationError> {
    for (key, value) in attributes {
        if let Some(allowed) = allowed {
            if !allowed.contains(key) {
                // Keys passed the token check already, so naming one is safe.
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

fn refusal(field: &str, finding: Finding) -> ValidationError {
    ValidationError::new(
        field,
        format!(
            "{}; patient-identifying data is not accepted",
            finding.describe()
        ),
    )
}

/// Eight or more digits with at most two separators (space, `.`, `-`, `/`,
/// parentheses, `+`) between consecutive digits.
fn has_long_number(text: &str) -> bool {
    let mut digits = 0;
    let mut gap = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits += 1;
            gap = 0;
            if digits > MAX_DIGIT_RUN {
                return true;
            }
        } else if digits > 0 && gap < 2 && matches!(c, ' ' | '.' | '-' | '/' | '(' | ')' | '+') {
            gap += 1;
        } else {
            digits = 0;
            gap = 0;
        }
    }
    false
}

/// `d{1,2}<s>d{1,2}<s>d{2,4}` or `d{4}<s>d{1,2}<s>d{1,2}` with one separator
/// `s` of `-`, `/` or `.`.
fn has_date(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_digit()) {
            if let Some(groups) = digit_groups(&chars[i..]) {
                let ok = match groups {
                    [a, b, c] => {
                        ((1..=2).contains(&a) && (1..=2).contains(&b) && (2..=4).contains(&c))
                            || (a == 4 && (1..=2).contains(&b) && (1..=2).contains(&c))
                    }
                };
                if ok {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// The lengths of three digit groups joined by one repeated separator at the
/// start of `chars`, if they are there and the third is not followed by
/// another digit.
fn digit_groups(chars: &[char]) -> Option<[usize; 3]> {
    let mut groups = [0usize; 3];
    let mut separator = None;
    let mut at = 0;
    for (n, group) in groups.iter_mut().enumerate() {
        let start = at;
        while at < chars.len() && chars[at].is_ascii_digit() {
            at += 1;
        }
        *group = at - start;
        if *group == 0 {
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
        ] {
            assert_eq!(screen(text), None, "{text:?}");
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

    proptest! {
        #[test]
        fn never_panics(text in any::<String>()) {
            let _ = screen(&text);
        }

        #[test]
        fn plain_words_pass(text in "[a-z ,!?'-]{0,120}") {
            // No digits, no @, no capitalised word after a title.
            prop_assume!(!text
                .split(|c: char| !c.is_ascii_alphabetic())
                .any(|w| LABELS.contains(&w)));
            prop_assert_eq!(screen(&text), None);
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
        fn an_email_anywhere_is_refused(
            local in "[a-z0-9._]{1,20}", host in "[a-z0-9-]{1,20}", tld in "[a-z]{2,6}",
            before in "[a-z ]{0,40}",
        ) {
            let text = format!("{before} {local}@{host}.{tld} thanks");
            prop_assert!(screen(&text).is_some(), "{}", text);
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
    }
}
