//! Names of objects (modules, tables, tenants, ids) that appear in URLs and keys.

/// The name serde gives a unit enum variant (`caller_hangup`, `PCMA`): how the API
/// spells it in messages and exports.
pub fn variant_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Longest name, bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Accept 1..=64 characters of `[A-Za-z0-9._-]` starting with a letter or digit.
pub fn check(what: &str, name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || !name.chars().all(ok_char)
        || !name.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "{what} {name:?} must be 1-{MAX_NAME_BYTES} characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_url_and_key_safe() {
        assert!(super::check("x", "prefix-router_2.1").is_ok());
        for bad in ["", "-x", "a/b", "a b", "a\0b", &"x".repeat(65)] {
            assert!(super::check("x", bad).is_err(), "{bad:?}");
        }
    }
}
