//! Just enough `application/x-www-form-urlencoded` to find a field.

/// The raw (still percent-encoded) value of field `name`, if present and not
/// empty.
pub fn field<'a>(form: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    form.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        (key == name && !value.is_empty()).then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields() {
        let form = b"deviceid=abc-1&timestamp=1700000000&empty=&flag";
        assert_eq!(field(form, b"deviceid"), Some(&b"abc-1"[..]));
        assert_eq!(field(form, b"timestamp"), Some(&b"1700000000"[..]));
        assert_eq!(field(form, b"empty"), None);
        assert_eq!(field(form, b"flag"), None);
        assert_eq!(field(form, b"device"), None);
        assert_eq!(field(b"", b"deviceid"), None);
    }
}
