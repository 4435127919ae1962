//! A small logic-less template language (a subset of Mustache) for the files in
//! `dns-templates/`. Record strings, zone layout and client configuration live in those data
//! files so an operator-visible change is a text edit, not a code change.
//!
//! Syntax: `{{name}}` inserts a value; `{{#name}}...{{/name}}` repeats its body once per item
//! of a list (the item's fields shadow outer ones) or once when a text value is non-empty;
//! `{{^name}}...{{/name}}` renders only when the value is missing, empty text or an empty
//! list; `{{! ...}}` is a comment. No escaping is done here: callers put only values that are
//! safe for the output format into the context (see `client.rs` for XML).

use std::collections::BTreeMap;

/// Values a template can see.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    List(Vec<Context>),
}

/// Named values of one scope.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context(BTreeMap<String, Value>);

impl Context {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.0.insert(name.into(), Value::Text(value.into()));
        self
    }

    pub fn list(&mut self, name: &str, items: Vec<Context>) -> &mut Self {
        self.0.insert(name.into(), Value::List(items));
        self
    }

    /// A text value (empty when missing or a list), for callers that reuse the context.
    pub fn text(&self, name: &str) -> &str {
        match self.0.get(name) {
            Some(Value::Text(s)) => s,
            _ => "",
        }
    }
}

/// A template that does not parse. Templates are compiled in, so this is a build-time mistake
/// that the unit tests catch; at run time it is still an error, never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template {template}: unclosed tag at byte {at}")]
    Unclosed { template: String, at: usize },
    #[error("template {template}: section {{{{#{name}}}}} is never closed")]
    UnclosedSection { template: String, name: String },
    #[error("template {template}: {{{{/{name}}}}} closes nothing")]
    StrayClose { template: String, name: String },
    #[error("template {template}: unknown value {{{{{name}}}}}")]
    Unknown { template: String, name: String },
}

#[derive(Debug, PartialEq)]
enum Node<'a> {
    Text(&'a str),
    Var(&'a str),
    Section {
        name: &'a str,
        inverted: bool,
        body: Vec<Node<'a>>,
    },
}

/// Renders `source` (named `template` in errors) with `ctx`. A `{{name}}` that no scope
/// defines is an error rather than an empty string, so a typo cannot publish a broken record.
pub fn render(template: &str, source: &str, ctx: &Context) -> Result<String, TemplateError> {
    let nodes = parse(template, source)?;
    let mut out = String::with_capacity(source.len());
    let mut scopes = vec![ctx];
    emit(template, &nodes, &mut scopes, &mut out)?;
    Ok(out)
}

fn lookup<'c>(scopes: &[&'c Context], name: &str) -> Option<&'c Value> {
    scopes.iter().rev().find_map(|c| c.0.get(name))
}

fn emit(
    template: &str,
    nodes: &[Node<'_>],
    scopes: &mut Vec<&Context>,
    out: &mut String,
) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Var(name) => match lookup(scopes, name) {
                Some(Value::Text(s)) => out.push_str(s),
                _ => {
                    return Err(TemplateError::Unknown {
                        template: template.into(),
                        name: (*name).into(),
                    })
                }
            },
            Node::Section {
                name,
                inverted,
                body,
            } => {
                let value = lookup(scopes, name);
                let empty = match value {
                    None => true,
                    Some(Value::Text(s)) => s.is_empty(),
                    Some(Value::List(l)) => l.is_empty(),
                };
                if *inverted {
                    if empty {
                        emit(template, body, scopes, out)?;
                    }
                    continue;
                }
                match value {
                    Some(Value::List(items)) => {
                        for item in items {
                            scopes.push(item);
                            let r = emit(template, body, scopes, out);
                            scopes.pop();
                            r?;
                        }
                    }
                    Some(Value::Text(s)) if !s.is_empty() => emit(template, body, scopes, out)?,
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// A section tag alone on its line takes the line with it, so templates can put `{{#x}}` on
/// lines of their own without leaving blank lines in the output.
fn standalone(source: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[end..]
        .find('\n')
        .map_or(source.len(), |i| end + i + 1);
    let before = &source[line_start..start];
    let after = &source[end..line_end];
    (before.trim().is_empty() && after.trim().is_empty()).then_some((line_start, line_end))
}

fn parse<'a>(template: &str, source: &'a str) -> Result<Vec<Node<'a>>, TemplateError> {
    // Each open section keeps its name, kind and the nodes gathered so far.
    let mut stack: Vec<(&'a str, bool, Vec<Node<'a>>)> = Vec::new();
    let mut nodes: Vec<Node<'a>> = Vec::new();
    let mut pos = 0;
    while let Some(rel) = source[pos..].find("{{") {
        let open = pos + rel;
        let close =
            source[open..]
                .find("}}")
                .map(|i| open + i)
                .ok_or_else(|| TemplateError::Unclosed {
                    template: template.into(),
                    at: open,
                })?;
        let tag = source[open + 2..close].trim();
        let end = close + 2;
        let sigil = tag.chars().next().unwrap_or(' ');
        let (text_end, next) = if matches!(sigil, '#' | '^' | '/' | '!') {
            standalone(source, open, end).unwrap_or((open, end))
        } else {
            (open, end)
        };
        if text_end > pos {
            nodes.push(Node::Text(&source[pos..text_end]));
        }
        pos = next;
        let name = tag.get(1..).unwrap_or("").trim();
        match sigil {
            '!' => {}
            '#' | '^' => stack.push((name, sigil == '^', std::mem::take(&mut nodes))),
            '/' => {
                let (open_name, inverted, outer) = match stack.pop() {
                    Some(s) if s.0 == name => s,
                    _ => {
                        return Err(TemplateError::StrayClose {
                            template: template.into(),
                            name: name.into(),
                        })
                    }
                };
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Section {
                    name: open_name,
                    inverted,
                    body,
                });
            }
            _ => nodes.push(Node::Var(tag)),
        }
    }
    if let Some((name, _, _)) = stack.pop() {
        return Err(TemplateError::UnclosedSection {
            template: template.into(),
            name: name.into(),
        });
    }
    if pos < source.len() {
        nodes.push(Node::Text(&source[pos..]));
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        let mut c = Context::new();
        c.set("domain", "example.com").set("empty", "");
        let mut a = Context::new();
        a.set("sel", "one");
        let mut b = Context::new();
        b.set("sel", "two").set("domain", "shadow.test");
        c.list("keys", vec![a, b]).list("none", vec![]);
        c
    }

    #[test]
    fn variables_and_lists() {
        let out = render(
            "t",
            "{{domain}}:{{#keys}}[{{sel}}@{{domain}}]{{/keys}}",
            &ctx(),
        );
        assert_eq!(
            out.unwrap(),
            "example.com:[one@example.com][two@shadow.test]"
        );
    }

    #[test]
    fn text_sections_and_inverted_sections() {
        let t = "{{#domain}}d{{/domain}}{{#empty}}e{{/empty}}{{^empty}}!e{{/empty}}\
                 {{^none}}!n{{/none}}{{^keys}}!k{{/keys}}{{^missing}}!m{{/missing}}";
        assert_eq!(render("t", t, &ctx()).unwrap(), "d!e!n!m");
    }

    #[test]
    fn standalone_tags_take_their_line_and_comments_vanish() {
        let t = "a\n{{! a comment\nover lines }}\n{{#keys}}\n- {{sel}}\n{{/keys}}\nb\n";
        assert_eq!(render("t", t, &ctx()).unwrap(), "a\n- one\n- two\nb\n");
    }

    #[test]
    fn inline_tags_keep_their_line() {
        let t = "x {{#keys}}{{sel}} {{/keys}}y\n";
        assert_eq!(render("t", t, &ctx()).unwrap(), "x one two y\n");
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            render("t", "{{nope}}", &ctx()),
            Err(TemplateError::Unknown { name, .. }) if name == "nope"
        ));
        assert!(matches!(
            render("t", "{{#keys}}x", &ctx()),
            Err(TemplateError::UnclosedSection { name, .. }) if name == "keys"
        ));
        assert!(matches!(
            render("t", "{{#keys}}x{{/none}}", &ctx()),
            Err(TemplateError::StrayClose { .. })
        ));
        assert!(matches!(
            render("t", "x {{domain", &ctx()),
            Err(TemplateError::Unclosed { at: 2, .. })
        ));
        // A list used as text is a template mistake too.
        assert!(render("t", "{{keys}}", &ctx()).is_err());
    }
}
