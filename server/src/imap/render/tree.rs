//! Walking mail-parser's part tree the way IMAP numbers parts (RFC 9051 §6.4.5), and reading
//! a part's raw header fields.
//!
//! mail-parser keeps a message's parts in one flat list: a multipart holds its children's
//! indices, an encapsulated message/rfc822 holds a whole nested `Message` of its own. The
//! nested message's offsets index the stored bytes when it was parsed in place, and the
//! decoded bytes when its part was base64 or quoted-printable (it then owns them), so every
//! [`Node`] carries the bytes its offsets index.

use std::borrow::Cow;
use std::num::NonZeroU32;

use mail_parser::{Message, MessagePart, PartType};

/// How deep part numbers and BODYSTRUCTURE descend. Hostile mail nests thousands of levels
/// to exhaust the stack; no real client shows more than a handful.
pub(super) const MAX_DEPTH: usize = 32;

/// The bytes a part's offsets index.
#[derive(Clone, Copy)]
pub(super) enum Src<'v, 'a> {
    /// The stored message: slices are borrowed for the whole FETCH, never copied.
    Stored(&'a [u8]),
    /// The decoded body of an encoded message/rfc822, owned by the parsed tree.
    Decoded(&'v [u8]),
}

impl<'v, 'a: 'v> Src<'v, 'a> {
    pub(super) fn bytes(&self) -> &'v [u8] {
        match *self {
            Src::Stored(b) => b,
            Src::Decoded(b) => b,
        }
    }

    /// `start..end` clamped to the bytes: offsets from a parser of hostile input are
    /// trusted for nothing.
    pub(super) fn slice(&self, start: u32, end: u32) -> Cow<'a, [u8]> {
        match *self {
            Src::Stored(b) => Cow::Borrowed(clamp(b, start, end)),
            Src::Decoded(b) => Cow::Owned(clamp(b, start, end).to_vec()),
        }
    }

    pub(super) fn slice_ref(&self, start: u32, end: u32) -> &'v [u8] {
        clamp(self.bytes(), start, end)
    }
}

fn clamp(b: &[u8], start: u32, end: u32) -> &[u8] {
    let end = (end as usize).min(b.len());
    let start = (start as usize).min(end);
    &b[start..end]
}

/// One MIME part, with what is needed to find its children and its bytes.
#[derive(Clone, Copy)]
pub(super) struct Node<'v, 'a> {
    pub part: &'v MessagePart<'a>,
    /// The message whose part list holds `part` (a multipart's child indices index it).
    pub msg: &'v Message<'a>,
    /// Where `part` sits in `msg.parts`: children must come after it, which rules out cycles.
    pub index: usize,
    /// The bytes `part`'s offsets index.
    pub src: Src<'v, 'a>,
    /// Multipart and message levels above this part, checked against [`MAX_DEPTH`].
    pub depth: usize,
}

impl<'v, 'a: 'v> Node<'v, 'a> {
    /// The root part of `msg`, whose offsets index `src`.
    pub(super) fn root(msg: &'v Message<'a>, src: Src<'v, 'a>, depth: usize) -> Option<Self> {
        Some(Node {
            part: msg.parts.first()?,
            msg,
            index: 0,
            src,
            depth,
        })
    }

    /// The part's own header block, blank line included.
    pub(super) fn header_bytes(&self) -> Cow<'a, [u8]> {
        self.src
            .slice(self.part.offset_header, self.part.offset_body)
    }

    /// The part's body as it is on the wire (still transfer-encoded).
    pub(super) fn body_bytes(&self) -> Cow<'a, [u8]> {
        self.src.slice(self.part.offset_body, self.part.offset_end)
    }

    pub(super) fn body_ref(&self) -> &'v [u8] {
        self.src
            .slice_ref(self.part.offset_body, self.part.offset_end)
    }

    pub(super) fn is_multipart(&self) -> bool {
        matches!(self.part.body, PartType::Multipart(_))
    }

    /// The root part of the message this part encapsulates (message/rfc822), if it parsed.
    pub(super) fn encapsulated(&self) -> Option<Node<'v, 'a>> {
        let PartType::Message(nested) = &self.part.body else {
            return None;
        };
        if self.depth >= MAX_DEPTH {
            return None;
        }
        let src = match &nested.raw_message {
            Cow::Borrowed(b) => Src::Stored(b),
            Cow::Owned(v) => Src::Decoded(v.as_slice()),
        };
        Node::root(nested, src, self.depth + 1)
    }

    /// The direct children of a multipart, in order.
    pub(super) fn children(&self) -> Vec<Node<'v, 'a>> {
        let PartType::Multipart(ids) = &self.part.body else {
            return Vec::new();
        };
        if self.depth >= MAX_DEPTH {
            return Vec::new();
        }
        ids.iter()
            .map(|&id| id as usize)
            // Children always come after their parent; anything else would be a cycle.
            .filter(|&id| id > self.index)
            .filter_map(|id| {
                Some(Node {
                    part: self.msg.parts.get(id)?,
                    msg: self.msg,
                    index: id,
                    src: self.src,
                    depth: self.depth + 1,
                })
            })
            .collect()
    }

    /// The parts numbered 1, 2, … below this one: a multipart's children; for a message
    /// (the top level, or an encapsulated one seen through its root), its root's children
    /// when that is a multipart, otherwise the root alone as part 1.
    fn numbered(&self, as_message: bool) -> Vec<Node<'v, 'a>> {
        if as_message {
            if self.is_multipart() {
                self.children()
            } else {
                vec![*self]
            }
        } else if let Some(root) = self.encapsulated() {
            root.numbered(true)
        } else {
            self.children()
        }
    }

    /// The part a `1.2.3` part number names, starting from this message root.
    pub(super) fn resolve(&self, path: &[NonZeroU32]) -> Option<Node<'v, 'a>> {
        let (first, rest) = path.split_first()?;
        let mut node = pick(self.numbered(true), *first)?;
        for n in rest {
            node = pick(node.numbered(false), *n)?;
        }
        Some(node)
    }

    /// Each header field of the part: its name as written and its whole raw bytes
    /// (name, value, folds and line end).
    pub(super) fn fields(&self) -> impl Iterator<Item = Field<'v>> + '_ {
        let bytes = self.src.bytes();
        let block_end = self.part.offset_body;
        self.part.headers.iter().filter_map(move |h| {
            let raw = field_extent(bytes, h.offset_field, h.offset_end, block_end);
            let colon = raw.iter().position(|&b| b == b':')?;
            let value_at = (h.offset_start as usize)
                .saturating_sub(h.offset_field as usize)
                .clamp(colon + 1, raw.len());
            Some(Field {
                name: trim(&raw[..colon]),
                raw,
                value: &raw[value_at..],
            })
        })
    }

    /// The first field called `name` (any case), unfolded and trimmed.
    pub(super) fn first_value(&self, name: &str) -> Option<Vec<u8>> {
        self.fields().find(|f| f.is(name)).map(|f| unfold(f.value))
    }

    /// The last field called `name`: for the Content-* fields, the one mail-parser obeyed
    /// when it decoded the part, so that what we announce matches what it did.
    pub(super) fn mime_value(&self, name: &str) -> Option<Vec<u8>> {
        self.fields()
            .filter(|f| f.is(name))
            .last()
            .map(|f| unfold(f.value))
    }
}

fn pick<'v, 'a>(list: Vec<Node<'v, 'a>>, n: NonZeroU32) -> Option<Node<'v, 'a>> {
    list.into_iter().nth(n.get() as usize - 1)
}

/// One header field as stored.
pub(super) struct Field<'v> {
    pub name: &'v [u8],
    pub raw: &'v [u8],
    pub value: &'v [u8],
}

impl Field<'_> {
    pub(super) fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// A field from its name to its line end. mail-parser's end offset is where its value parser
/// stopped, which is normally just past the line feed; extending to the line feed keeps the
/// field whole either way, but never past the header block.
fn field_extent(bytes: &[u8], start: u32, end: u32, block_end: u32) -> &[u8] {
    let limit = (block_end as usize).min(bytes.len());
    let start = (start as usize).min(limit);
    let mut end = (end as usize).clamp(start, limit);
    if end > start && bytes[end - 1] != b'\n' {
        end = bytes[end..limit]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(limit, |p| end + p + 1);
    }
    &bytes[start..end]
}

/// A folded raw value on one line, as IMAP strings in ENVELOPE and BODYSTRUCTURE want it:
/// line breaks removed (RFC 5322 §2.2.3), NULs dropped (no IMAP string may carry one),
/// surrounding white space trimmed.
pub(super) fn unfold(value: &[u8]) -> Vec<u8> {
    let kept: Vec<u8> = value
        .iter()
        .copied()
        .filter(|b| !matches!(b, b'\r' | b'\n' | 0))
        .collect();
    trim(&kept).to_vec()
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}
