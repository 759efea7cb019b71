//! The guide's password policy: at least 8 characters, four character types, and three strengths.
//!
//! Good: 3 character types with some repeated characters ("Sampla12"). Strong: 3 types and no repeats
//! ("Sample12"), or 4 types with repeats ("Sampla1%"). Excellent: 4 types, no repeats ("Sample1%").
//! A "repeat" is any character occurring more than once (case-sensitive: 'S' and 's' differ).
//! The strength itself is computed by `PasswordStrength::of` (the policy's own type); this module
//! is where a password is accepted or refused.

pub use crate::settings::global::PasswordStrength;

/// Argon2 hashes any length, but an unbounded input is a denial-of-service lever.
pub const MAX_LENGTH: usize = 256;

/// The strength of a password meeting `minimum`, or why it is refused, in words a user can act on.
pub fn check(password: &str, minimum: PasswordStrength) -> Result<PasswordStrength, String> {
    if password.chars().count() > MAX_LENGTH {
        return Err(format!(
            "the password is longer than {MAX_LENGTH} characters"
        ));
    }
    match PasswordStrength::of(password) {
        Some(got) if got >= minimum => Ok(got),
        _ => {
            let need = match minimum {
                PasswordStrength::Good => {
                    "at least 8 characters of at least three types (lowercase, uppercase, digits, special)"
                }
                PasswordStrength::Strong => {
                    "at least 8 characters: three character types without repeated characters, or all four types"
                }
                PasswordStrength::Excellent => {
                    "at least 8 characters of all four types (lowercase, uppercase, digits, special) without repeated characters"
                }
            };
            Err(format!("the password is too weak: it needs {need}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_examples() {
        assert_eq!(
            PasswordStrength::of("Sampla12"),
            Some(PasswordStrength::Good)
        );
        assert_eq!(
            PasswordStrength::of("Sample12"),
            Some(PasswordStrength::Strong)
        );
        assert_eq!(
            PasswordStrength::of("Sampla1%"),
            Some(PasswordStrength::Strong)
        );
        assert_eq!(
            PasswordStrength::of("Sample1%"),
            Some(PasswordStrength::Excellent)
        );
    }

    #[test]
    fn no_password_may_be_less_than_8_characters() {
        assert_eq!(PasswordStrength::of("Sam1%"), None);
        assert_eq!(PasswordStrength::of("Sampl1%"), None);
        assert!(check("Sampl1%", PasswordStrength::Good).is_err());
    }

    #[test]
    fn fewer_than_three_types_is_never_accepted() {
        assert_eq!(PasswordStrength::of("samplesample"), None);
        assert_eq!(PasswordStrength::of("sampleab12"), None);
        assert!(check("abcdefgh12", PasswordStrength::Good).is_err());
    }

    #[test]
    fn minimum_strength_is_enforced() {
        assert!(check("Sampla12", PasswordStrength::Good).is_ok());
        assert!(check("Sampla12", PasswordStrength::Strong).is_err());
        assert!(check("Sample12", PasswordStrength::Strong).is_ok());
        assert!(check("Sampla1%", PasswordStrength::Strong).is_ok());
        assert!(check("Sampla1%", PasswordStrength::Excellent).is_err());
        assert!(check("Sample1%", PasswordStrength::Excellent).is_ok());
    }

    #[test]
    fn overlong_passwords_are_refused() {
        let long = "Aa1%".repeat(100);
        assert!(check(&long, PasswordStrength::Good).is_err());
    }
}
