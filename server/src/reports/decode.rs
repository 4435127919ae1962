//! From a report message to report documents: the attachment (or body) that holds the report,
//! decompressed under byte caps. Everything here is hostile input: a zip bomb stops at the
//! decompressed cap, read through a bounded reader, never inflated into memory first.

use super::ReportsError;
use mail_parser::MimeHeaders;
use std::io::Read;

/// The caps of `[reports]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_compressed: usize,
    pub max_decompressed: usize,
    pub max_zip_files: usize,
}

/// How a part's bytes are packed, from its content type or file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    Zip,
    Gzip,
    Plain,
}

/// The packing a part declares, if it looks like a report at all. Reporters disagree on
/// content types (Google: `application/zip`, Microsoft: `application/gzip`, others
/// `application/x-gzip` or `application/octet-stream` with a `.xml.gz` name), so the file
/// name counts as much as the type.
pub fn packing_of(content_type: &str, name: &str) -> Option<Packing> {
    let ct = content_type.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    if ct.ends_with("/zip") || ct.ends_with("/x-zip-compressed") || name.ends_with(".zip") {
        return Some(Packing::Zip);
    }
    if ct.ends_with("/gzip")
        || ct.ends_with("/x-gzip")
        || ct == "application/tlsrpt+gzip"
        || name.ends_with(".gz")
    {
        return Some(Packing::Gzip);
    }
    if ct == "text/xml"
        || ct == "application/xml"
        || ct == "application/tlsrpt+json"
        || name.ends_with(".xml")
        || name.ends_with(".json")
    {
        return Some(Packing::Plain);
    }
    None
}

/// The report documents of a message: every part that looks like a report, unpacked.
pub fn documents(raw: &[u8], limits: &Limits) -> Result<Vec<Vec<u8>>, ReportsError> {
    let msg = mail_parser::MessageParser::default()
        .parse(raw)
        .ok_or_else(|| ReportsError::Parse("not a MIME message".into()))?;
    let mut out = Vec::new();
    for part in msg.parts.iter() {
        let ct = part
            .content_type()
            .map(|c| match c.subtype() {
                Some(sub) => format!("{}/{}", c.ctype(), sub),
                None => c.ctype().to_string(),
            })
            .unwrap_or_default();
        if ct.starts_with("multipart/") || ct.starts_with("message/") {
            continue;
        }
        let name = part.attachment_name().unwrap_or_default();
        let Some(packing) = packing_of(&ct, name) else {
            continue;
        };
        out.extend(unpack(part.contents(), packing, limits)?);
    }
    if out.is_empty() {
        return Err(ReportsError::Parse(
            "no report attachment (zip, gzip, XML or JSON)".into(),
        ));
    }
    Ok(out)
}

/// Unpacks one part's bytes.
pub fn unpack(
    bytes: &[u8],
    packing: Packing,
    limits: &Limits,
) -> Result<Vec<Vec<u8>>, ReportsError> {
    if bytes.len() > limits.max_compressed {
        return Err(ReportsError::TooLarge(format!(
            "attachment of {} bytes is over reports.max_compressed_bytes",
            bytes.len()
        )));
    }
    match packing {
        Packing::Plain => {
            if bytes.len() > limits.max_decompressed {
                return Err(ReportsError::TooLarge(
                    "document over reports.max_decompressed_bytes".into(),
                ));
            }
            Ok(vec![bytes.to_vec()])
        }
        Packing::Gzip => Ok(vec![read_capped(
            flate2::read::MultiGzDecoder::new(bytes),
            limits.max_decompressed,
        )?]),
        Packing::Zip => unzip(bytes, limits),
    }
}

fn unzip(bytes: &[u8], limits: &Limits) -> Result<Vec<Vec<u8>>, ReportsError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| ReportsError::Parse(format!("bad zip: {e}")))?;
    if archive.len() > limits.max_zip_files {
        return Err(ReportsError::TooLarge(format!(
            "zip of {} files is over reports.max_zip_files",
            archive.len()
        )));
    }
    let mut out = Vec::new();
    // One budget for the whole archive: ten files just under the cap are a bomb too.
    let mut budget = limits.max_decompressed;
    for i in 0..archive.len() {
        let file = archive
            .by_index(i)
            .map_err(|e| ReportsError::Parse(format!("bad zip entry: {e}")))?;
        if file.is_dir() {
            continue;
        }
        // The declared size is the peer's word; the capped reader is what holds the line.
        let doc = read_capped(file, budget)?;
        budget -= doc.len();
        out.push(doc);
    }
    Ok(out)
}

/// Reads at most `cap` bytes; one more is a refusal. The buffer grows with what is actually
/// read, so memory stays at the cap whatever the stream claims.
pub fn read_capped(r: impl Read, cap: usize) -> Result<Vec<u8>, ReportsError> {
    let mut out = Vec::new();
    let n = r
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ReportsError::Parse(format!("cannot decompress: {e}")))?;
    if n > cap {
        return Err(ReportsError::TooLarge(
            "decompressed document over reports.max_decompressed_bytes".into(),
        ));
    }
    Ok(out)
}

/// gunzip of at most `cap` bytes (a report read back, in tests and tools).
pub fn gunzip(bytes: &[u8], cap: usize) -> Result<Vec<u8>, ReportsError> {
    read_capped(flate2::read::MultiGzDecoder::new(bytes), cap)
}

/// gzip of `bytes` (for the reports we send).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(bytes);
    e.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn limits() -> Limits {
        Limits {
            max_compressed: 1 << 20,
            max_decompressed: 1 << 20,
            max_zip_files: 2,
        }
    }

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn packing_from_type_or_name() {
        assert_eq!(packing_of("application/zip", ""), Some(Packing::Zip));
        assert_eq!(
            packing_of("application/octet-stream", "a.xml.gz"),
            Some(Packing::Gzip)
        );
        assert_eq!(
            packing_of("application/tlsrpt+gzip", ""),
            Some(Packing::Gzip)
        );
        assert_eq!(
            packing_of("application/tlsrpt+json", ""),
            Some(Packing::Plain)
        );
        assert_eq!(packing_of("text/plain", "notes.txt"), None);
    }

    #[test]
    fn gzip_round_trip_and_bomb_refused() {
        let doc = b"<feedback/>".to_vec();
        assert_eq!(
            unpack(&gzip(&doc), Packing::Gzip, &limits()).unwrap(),
            vec![doc]
        );
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 64 * 1024);
        let e = unpack(&bomb, Packing::Gzip, &limits()).unwrap_err();
        assert!(matches!(e, ReportsError::TooLarge(_)), "{e}");
    }

    #[test]
    fn zip_bomb_and_file_count_refused() {
        let ok = zip_of(&[("r.xml", b"<feedback/>")]);
        assert_eq!(unpack(&ok, Packing::Zip, &limits()).unwrap().len(), 1);
        let zeros = vec![0u8; 10 << 20];
        let bomb = zip_of(&[("r.xml", &zeros)]);
        assert!(bomb.len() < 64 * 1024);
        assert!(matches!(
            unpack(&bomb, Packing::Zip, &limits()),
            Err(ReportsError::TooLarge(_))
        ));
        let many = zip_of(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
        assert!(matches!(
            unpack(&many, Packing::Zip, &limits()),
            Err(ReportsError::TooLarge(_))
        ));
        assert!(unpack(b"PK not a zip", Packing::Zip, &limits()).is_err());
    }
}
