//! Streaming stored audio with `Range` support (RFC 9110 §14): shared by voice samples and
//! generated speech.

use std::ops::Range;

use actix_web::{
    HttpRequest, HttpResponse,
    body::SizedStream,
    http::{StatusCode, header},
};

use crate::{
    error::ApiError,
    speech::storage::{AudioStorage, StorageError},
};

/// The byte range a `Range` header asks for, given the object's size.
///
/// `Ok(None)` means "send everything": no header, another unit, several ranges or a
/// malformed value (which RFC 9110 lets a server ignore). A well-formed range that starts
/// past the end is 416.
pub fn requested_range(value: Option<&str>, size: u64) -> Result<Option<Range<u64>>, ApiError> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = Err(ApiError::RangeNotSatisfiable { size });
    match (first.trim(), last.trim()) {
        ("", "") => Ok(None),
        ("", suffix) => match suffix.parse::<u64>() {
            Ok(0) => unsatisfiable,
            Ok(_) if size == 0 => unsatisfiable,
            Ok(n) => Ok(Some(size.saturating_sub(n)..size)),
            Err(_) => Ok(None),
        },
        (start, end) => {
            let Ok(start) = start.parse::<u64>() else {
                return Ok(None);
            };
            let end = match end {
                "" => None,
                text => match text.parse::<u64>() {
                    Ok(n) => Some(n),
                    Err(_) => return Ok(None),
                },
            };
            if end.is_some_and(|end| end < start) {
                return Ok(None);
            }
            if start >= size {
                return unsatisfiable;
            }
            let end = end.map_or(size - 1, |e| e.min(size - 1));
            Ok(Some(start..end + 1))
        }
    }
}

/// Answers with the object at `key`: 200 with all of it, or 206 with the requested range;
/// always with `Content-Length` and `Accept-Ranges: bytes`.
pub async fn serve(
    req: &HttpRequest,
    storage: &AudioStorage,
    key: &str,
    content_type: &str,
    file_name: &str,
) -> Result<HttpResponse, ApiError> {
    let missing = |e: StorageError| match e {
        StorageError::NotFound => ApiError::NotFound("audio"),
        other => ApiError::internal(other),
    };
    let size = storage.size(key).await.map_err(missing)?;
    let range = requested_range(
        req.headers()
            .get(header::RANGE)
            .and_then(|v| v.to_str().ok()),
        size,
    )?;
    let partial = range.is_some();
    let audio = storage.stream(key, range).await.map_err(missing)?;
    let length = audio.range.end - audio.range.start;
    let mut response = HttpResponse::build(if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    });
    response
        .insert_header((header::CONTENT_TYPE, content_type.to_owned()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{file_name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "private, max-age=3600"));
    if partial {
        response.insert_header((
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                audio.range.start,
                audio.range.end.saturating_sub(1),
                audio.size
            ),
        ));
    }
    Ok(response.body(SizedStream::new(length, audio.body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |v: &str| requested_range(Some(v), 100);
        assert_eq!(r("bytes=0-9").unwrap(), Some(0..10));
        assert_eq!(r("bytes=90-").unwrap(), Some(90..100));
        assert_eq!(r("bytes=-10").unwrap(), Some(90..100));
        assert_eq!(r("bytes=-500").unwrap(), Some(0..100));
        assert_eq!(r("bytes=50-5000").unwrap(), Some(50..100));
        assert_eq!(r("bytes=5-1").unwrap(), None);
        assert_eq!(r("bytes=0-1,5-6").unwrap(), None);
        assert_eq!(r("items=0-1").unwrap(), None);
        assert_eq!(r("bytes=abc").unwrap(), None);
        assert!(r("bytes=100-").is_err());
        assert!(r("bytes=-0").is_err());
        assert_eq!(requested_range(None, 100).unwrap(), None);
    }
}
