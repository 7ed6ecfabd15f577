//! Images attached to a task (`run --image PATH`): type checked by content, size limited.

use super::chat::Image;

/// The most base64 text one image may take (Anthropic's limit for one image is 5 MB).
pub const MAX_BYTES: usize = 5 * 1024 * 1024;

/// Reads and checks an image file.
pub fn load(path: &std::path::Path) -> Result<Image, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read image {}: {e}", path.display()))?;
    // The limit applies to the base64 text sent (Anthropic's rule).
    if bytes.len().div_ceil(3) * 4 > MAX_BYTES {
        return Err(format!(
            "image {} is {} bytes, too large: at most about 3.75 MiB, 5 MiB once base64-encoded",
            path.display(),
            bytes.len()
        ));
    }
    let mime = sniff(&bytes).ok_or_else(|| {
        format!(
            "{} is not a PNG, JPEG, GIF or WebP image (judged by its content, not its name)",
            path.display()
        )
    })?;
    Ok(Image {
        mime: mime.to_owned(),
        base64: {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        },
    })
}

/// The MIME type from the first bytes.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_judged_by_content() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"<svg"), None);
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("x.png");
        std::fs::write(&fake, "not a png").unwrap();
        assert!(load(&fake).unwrap_err().contains("not a PNG"));
        let big = dir.path().join("big.png");
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.resize(MAX_BYTES + 1, 0);
        std::fs::write(&big, b).unwrap();
        assert!(load(&big).unwrap_err().contains("too large"));
    }
}
