//! Twilio request parameters: `application/x-www-form-urlencoded` bodies and query strings
//! with CapitalizedNames, read into typed values with Twilio-shaped errors that name the bad
//! parameter. Unknown parameters are ignored, as Twilio ignores them.

use taskyard_engine::{QueueOrder, Sid};

use crate::error::ApiError;

/// The decoded `name=value` pairs of a body or query string, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(bytes: &[u8]) -> Params {
        Params(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The last value given for `name` (a repeated key takes the last value).
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.str(name).map(str::to_string)
    }

    /// Every value given for `name`, splitting comma lists (`A=x&A=y` and `A=x,y` alike).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn required(&self, name: &str) -> Result<String, ApiError> {
        self.string(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "Missing required parameter {name} in the post body"
            ))
        })
    }

    /// A strict boolean: `true`/`false` (any case), `1`/`0`.
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.str(name) {
            None => Ok(None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(ApiError::invalid(format!(
                    "{name} must be true or false, not '{v}'"
                ))),
            },
        }
    }

    /// Twilio's lenient boolean (Activity `Available`, list filters): `true`, `1` and `yes`
    /// mean true, anything else false.
    pub fn loose_bool(&self, name: &str) -> Option<bool> {
        self.str(name)
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
    }

    /// An integer of type `T` (range-checked by the type itself).
    pub fn int<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.str(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::invalid(format!("{name} must be a whole number in range, not '{v}'"))
            }),
        }
    }

    /// A SID with the given prefix.
    pub fn sid(&self, name: &str, prefix: &'static str) -> Result<Option<Sid>, ApiError> {
        match self.str(name) {
            None => Ok(None),
            Some(v) => Sid::parse_with(v, prefix).map(Some).map_err(|_| {
                ApiError::invalid(format!(
                    "{name} must be a {prefix} SID (34 characters), not '{v}'"
                ))
            }),
        }
    }

    pub fn queue_order(&self, name: &str) -> Result<Option<QueueOrder>, ApiError> {
        match self.str(name) {
            None => Ok(None),
            Some(v) => QueueOrder::parse(v).map(Some).ok_or_else(|| {
                ApiError::invalid(format!("{name} must be FIFO or LIFO, not '{v}'"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_typed_values_and_names_the_bad_one() {
        let p = Params::parse(b"A=1&B=true&C=yes&D=x&S=WK0123456789abcdef0123456789abcdef&L=a,b&L=c&A=2&E=%7B%22k%22%3A1%7D");
        assert_eq!(p.int::<u32>("A").expect("int"), Some(2), "last value wins");
        assert_eq!(p.bool("B").expect("bool"), Some(true));
        assert!(p.bool("C").is_err(), "strict booleans refuse yes");
        assert_eq!(p.loose_bool("C"), Some(true));
        assert_eq!(p.loose_bool("D"), Some(false));
        assert!(
            p.int::<u32>("D")
                .expect_err("not a number")
                .message
                .contains("D")
        );
        assert!(p.sid("S", "WK").expect("sid").is_some());
        assert!(p.sid("S", "WA").is_err());
        assert_eq!(p.list("L"), vec!["a", "b", "c"]);
        assert_eq!(p.str("E"), Some("{\"k\":1}"));
        assert!(p.required("Missing").is_err());
        assert!(p.int::<u32>("Neg").expect("absent").is_none());
        assert!(Params::parse(b"N=-1").int::<u32>("N").is_err());
    }
}
