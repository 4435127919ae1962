//! An html2text decorator that renders mail as plain text: links become their text (the
//! URL travels as an annotation, so anchors can be collected with their words), headings get
//! no `#`, emphasis no `*`, and no footnote list is appended.

use html2text::render::{TaggedLine, TextDecorator};

/// What a stretch of rendered text is: plain, or the visible part of a link to this URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum Mark {
    #[default]
    Plain,
    Link(String),
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct MailDecorator;

impl TextDecorator for MailDecorator {
    type Annotation = Mark;

    fn decorate_link_start(&mut self, url: &str) -> (String, Mark) {
        (String::new(), Mark::Link(url.to_string()))
    }
    fn decorate_link_end(&mut self) -> String {
        String::new()
    }
    fn decorate_em_start(&self) -> (String, Mark) {
        (String::new(), Mark::Plain)
    }
    fn decorate_em_end(&self) -> String {
        String::new()
    }
    fn decorate_strong_start(&self) -> (String, Mark) {
        (String::new(), Mark::Plain)
    }
    fn decorate_strong_end(&self) -> String {
        String::new()
    }
    fn decorate_strikeout_start(&self) -> (String, Mark) {
        (String::new(), Mark::Plain)
    }
    fn decorate_strikeout_end(&self) -> String {
        String::new()
    }
    fn decorate_code_start(&self) -> (String, Mark) {
        (String::new(), Mark::Plain)
    }
    fn decorate_code_end(&self) -> String {
        String::new()
    }
    fn decorate_preformat_first(&self) -> Mark {
        Mark::Plain
    }
    fn decorate_preformat_cont(&self) -> Mark {
        Mark::Plain
    }
    fn decorate_image(&mut self, _src: &str, title: &str) -> (String, Mark) {
        (title.to_string(), Mark::Plain)
    }
    fn header_prefix(&self, _level: usize) -> String {
        String::new()
    }
    fn quote_prefix(&self) -> String {
        "> ".to_string()
    }
    fn unordered_item_prefix(&self) -> String {
        "- ".to_string()
    }
    fn ordered_item_prefix(&self, i: i64) -> String {
        format!("{i}. ")
    }
    fn make_subblock_decorator(&self) -> Self {
        *self
    }
    fn decorate_superscript_start(&self) -> (String, Mark) {
        (String::new(), Mark::Plain)
    }
    fn decorate_superscript_end(&self) -> String {
        String::new()
    }
    fn finalise(&mut self, _urls: Vec<String>) -> Vec<TaggedLine<Mark>> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_without_markup() {
        let html = "<h1>Title</h1><p><b>bold</b> <em>em</em> <a href=\"https://x.example/\">link</a></p><ul><li>item</li></ul>";
        let lines = html2text::config::with_decorator(MailDecorator)
            .lines_from_read(html.as_bytes(), 80)
            .unwrap();
        let text: Vec<String> = lines
            .iter()
            .map(|l| l.tagged_strings().map(|t| t.s.as_str()).collect())
            .collect();
        assert_eq!(text.join("\n").trim(), "Title\n\nbold em link\n- item");
        let link = lines
            .iter()
            .flat_map(|l| l.tagged_strings())
            .find(|t| t.tag.contains(&Mark::Link("https://x.example/".into())))
            .map(|t| t.s.clone());
        assert_eq!(link.as_deref(), Some("link"));
    }
}
