//! Reads the chart's Go templates as text, without rendering them: their
//! `{{ … }}` actions with positions, the nesting of `if`/`with`/`range`/
//! `define`/`block` … `end`, and a YAML skeleton of a manifest template.
//!
//! The skeleton is a template's static YAML with every action kept as a
//! `«…»` marker, so a test can see where each value lands while nothing is
//! evaluated. Control actions (`if`, `else`, `end`, …) and comments are
//! dropped, so both sides of a conditional are in it. A printing action alone
//! on its line (`{{- toYaml .Values.resources | nindent 12 }}`) becomes, at its
//! column, a list item among list items, a line of a block scalar after `|`,
//! or else a key with a null value. One inside a line is replaced in place.
//! This is no renderer: the real render is `helm template` (see helm.rs).

use serde_yaml::Value;

/// One `{{ … }}` action.
#[derive(Debug)]
pub(crate) struct Action {
    /// The 1-based line of its `{{`.
    pub(crate) line: usize,
    /// The 0-based column of its `{{`.
    pub(crate) column: usize,
    /// What is between the delimiters, trim markers (`{{- `, ` -}}`) removed.
    pub(crate) body: String,
    /// Byte range of the whole action, delimiters included.
    span: std::ops::Range<usize>,
}

/// A skeleton line before its context is known.
enum Line {
    Text(String),
    /// A printing action alone on its line: its column and marker.
    Alone(usize, String),
}

impl Action {
    /// The first word: `if`, `end`, `include`, `.Values.x`, ….
    pub(crate) fn word(&self) -> &str {
        self.body.split_whitespace().next().unwrap_or("")
    }

    fn is_comment(&self) -> bool {
        self.body.starts_with("/*")
    }

    /// Opens a block that an `end` closes.
    fn opens(&self) -> bool {
        !self.is_comment() && matches!(self.word(), "if" | "with" | "range" | "define" | "block")
    }

    /// Prints something: not a comment, control flow or a variable assignment.
    pub(crate) fn prints(&self) -> bool {
        !self.is_comment()
            && !self.opens()
            && !matches!(self.word(), "end" | "else" | "break" | "continue")
            && !self.body.contains(":=")
            && !self.body.contains(" = ")
    }

    /// The `«…»` marker the skeleton shows for it.
    fn marker(&self) -> String {
        format!("«{}»", self.body)
    }
}

/// Every action of `src`, in order. Errors: a `{{` without its `}}`, a `{{`
/// inside an action, an unterminated comment or string, and a `}}` outside
/// any action (in these YAML templates, always a broken action).
pub(crate) fn actions(src: &str) -> Result<Vec<Action>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(found) = src[pos..].find("{{") {
        let start = pos + found;
        stray_close(src, pos, start)?;
        let end = close(src, start)?;
        let mut inner = &src[start + 2..end - 2];
        // A trim marker is a `-` with white space on its inner side;
        // `{{-3}}` is the number -3.
        if inner.starts_with("- ") || inner.starts_with("-\n") || inner.starts_with("-\t") {
            inner = &inner[1..];
        }
        if inner.ends_with(" -") || inner.ends_with("\n-") || inner.ends_with("\t-") {
            inner = &inner[..inner.len() - 1];
        }
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        out.push(Action {
            line: src[..start].matches('\n').count() + 1,
            column: src[line_start..start].chars().count(),
            body: inner.trim().to_owned(),
            span: start..end,
        });
        pos = end;
    }
    stray_close(src, pos, src.len())?;
    Ok(out)
}

fn line_of(src: &str, at: usize) -> usize {
    src[..at].matches('\n').count() + 1
}

fn stray_close(src: &str, from: usize, to: usize) -> Result<(), String> {
    match src[from..to].find("}}") {
        Some(i) => Err(format!(
            "line {}: `}}}}` without `{{{{`",
            line_of(src, from + i)
        )),
        None => Ok(()),
    }
}

/// The end (after `}}`) of the action whose `{{` is at `start`.
fn close(src: &str, start: usize) -> Result<usize, String> {
    let line = line_of(src, start);
    let body = &src[start + 2..];
    let lead = body.len() - body.trim_start_matches('-').trim_start().len();
    if body[lead..].starts_with("/*") {
        let comment_end = body[lead..]
            .find("*/")
            .ok_or(format!("line {line}: unterminated comment"))?
            + lead
            + 2;
        let rest = body[comment_end..].trim_start();
        let rest = rest.strip_prefix('-').unwrap_or(rest);
        if !rest.starts_with("}}") {
            return Err(format!("line {line}: a comment must end with `*/}}}}`"));
        }
        return Ok(src.len() - rest.len() + 2);
    }
    let mut quote: Option<char> = None;
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match (quote, c) {
            (Some('"' | '\''), '\\') => {
                chars.next();
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(c),
            (None, '}') if body[i..].starts_with("}}") => return Ok(start + 2 + i + 2),
            (None, '{') if body[i..].starts_with("{{") => {
                return Err(format!("line {line}: `{{{{` inside an action"));
            }
            _ => {}
        }
    }
    Err(match quote {
        Some(q) => format!("line {line}: unterminated {q} string in an action"),
        None => format!("line {line}: `{{{{` without `}}}}`"),
    })
}

/// Checks that blocks nest: every `if`/`with`/`range`/`define`/`block` has
/// its `end`, every `end` a block, and every `else` is inside `if`, `with` or
/// `range`.
pub(crate) fn check_blocks(actions: &[Action]) -> Result<(), String> {
    let mut open: Vec<&Action> = Vec::new();
    for a in actions.iter().filter(|a| !a.is_comment()) {
        match a.word() {
            _ if a.opens() => open.push(a),
            "else"
                if open
                    .last()
                    .is_some_and(|o| matches!(o.word(), "if" | "with" | "range")) => {}
            "else" => return Err(format!("line {}: `else` outside if/with/range", a.line)),
            "end" if open.pop().is_none() => {
                return Err(format!("line {}: `end` without a block", a.line));
            }
            _ => {}
        }
    }
    match open.last() {
        Some(o) => Err(format!("line {}: `{}` is never closed", o.line, o.body)),
        None => Ok(()),
    }
}

/// The blocks open at `actions[index]`, outermost first, as their opening
/// actions' bodies; inside an `else`, `else of <opening body>`.
pub(crate) fn enclosing(actions: &[Action], index: usize) -> Vec<String> {
    let mut open = Vec::new();
    for a in actions[..index].iter().filter(|a| !a.is_comment()) {
        if a.opens() {
            open.push(a.body.clone());
        } else if a.word() == "end" {
            open.pop();
        } else if a.word() == "else" {
            if let Some(top) = open.last_mut() {
                *top = format!("else of {}", top.trim_start_matches("else of "));
            }
        }
    }
    open
}

/// The index of the `end` that closes the block `actions[open]` opens.
pub(crate) fn matching_end(actions: &[Action], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, a) in actions.iter().enumerate().skip(open) {
        if a.opens() {
            depth += 1;
        } else if a.word() == "end" {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// Whether only white space is before `actions[first]` and after `actions[last]`.
pub(crate) fn spans_whole_file(src: &str, actions: &[Action], first: usize, last: usize) -> bool {
    src[..actions[first].span.start].trim().is_empty()
        && src[actions[last].span.end..].trim().is_empty()
}

/// The YAML skeleton of a manifest template (see the module docs).
pub(crate) fn skeleton(src: &str) -> Result<Value, String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut pos = 0;
    for a in actions(src)? {
        push_text(&mut lines, &mut current, &src[pos..a.span.start]);
        pos = a.span.end;
        let rest_of_line = src[pos..].split('\n').next().unwrap_or("");
        if a.prints() && current.trim().is_empty() && rest_of_line.trim().is_empty() {
            lines.push(Line::Alone(a.column, a.marker()));
            current.clear();
            // The rest of its line is white space: skip it and its newline.
            pos = (pos + rest_of_line.len() + 1).min(src.len());
        } else if a.prints() {
            current.push_str(&a.marker());
        }
    }
    push_text(&mut lines, &mut current, &src[pos..]);
    lines.push(Line::Text(current));

    let mut text: Vec<String> = Vec::new();
    for line in lines {
        let line = match line {
            Line::Text(t) => t,
            Line::Alone(column, marker) => place(&text, column, &marker),
        };
        text.push(line);
    }
    let text = text.join("\n");
    serde_yaml::from_str(&text).map_err(|e| format!("skeleton is not YAML: {e}\n{text}"))
}

/// The skeleton line for a printing action alone on its line, after `before`:
/// its output goes where the nearest line at or left of `column` says.
fn place(before: &[String], column: usize, marker: &str) -> String {
    let pad = " ".repeat(column);
    let context = before.iter().rev().find_map(|l| {
        let t = l.trim();
        let indent = l.len() - l.trim_start().len();
        (!t.is_empty() && !t.starts_with('#') && indent <= column).then_some((indent, t))
    });
    let block_scalar = |l: &str| {
        ["|", ">", "|-", "|+", ">-", ">+"]
            .iter()
            .any(|s| l.ends_with(s))
    };
    let quoted = serde_json::to_string(marker).unwrap();
    match context {
        // A line of the block scalar that `key: |` opens.
        Some((_, l)) if block_scalar(l) => format!("{pad}{marker}"),
        // An item among the list items at this column.
        Some((indent, l)) if indent == column && l.starts_with("- ") => format!("{pad}- {quoted}"),
        // Else the content of a mapping.
        _ => format!("{pad}{quoted}: null"),
    }
}

/// Adds `text` to the line being built, closing a line at each newline.
fn push_text(lines: &mut Vec<Line>, current: &mut String, text: &str) {
    let mut parts = text.split('\n');
    if let Some(first) = parts.next() {
        current.push_str(first);
    }
    for part in parts {
        lines.push(Line::Text(std::mem::take(current)));
        current.push_str(part);
    }
}

/// The `«…»` marker's action, if `v` is one.
pub(crate) fn marker(v: &Value) -> Option<&str> {
    v.as_str()?.strip_prefix('«')?.strip_suffix('»')
}

/// The one action inserted at a skeleton key such as `securityContext:`,
/// without its `| nindent N`: the key must hold nothing else.
pub(crate) fn only_insert(v: &Value) -> String {
    let map = v
        .as_mapping()
        .unwrap_or_else(|| panic!("not a mapping: {v:?}"));
    let keys: Vec<_> = map.keys().collect();
    assert!(
        keys.len() == 1 && map[keys[0]].is_null(),
        "one inserted action expected: {v:?}"
    );
    let action = marker(keys[0]).unwrap_or_else(|| panic!("not an action: {:?}", keys[0]));
    match action.rsplit_once(" | nindent ") {
        Some((body, _)) => body.to_owned(),
        None => action.to_owned(),
    }
}

/// The reader on small inputs, including broken ones the chart never has.
#[test]
fn the_template_reader_finds_broken_actions_and_keeps_values_in_place() {
    let ok = "a: {{ \"}}\" | quote }}\n{{- /* c }} */ -}}\n{{- if .x }}b{{ else }}c{{ end }}";
    let all = actions(ok).unwrap();
    let bodies: Vec<_> = all.iter().map(|a| a.body.as_str()).collect();
    assert_eq!(
        bodies,
        ["\"}}\" | quote", "/* c }} */", "if .x", "else", "end"]
    );
    assert_eq!((all[2].line, all[2].column), (3, 0));
    check_blocks(&all).unwrap();
    assert_eq!(enclosing(&all, 3), ["if .x"]);
    assert_eq!(enclosing(&all, 4), ["else of if .x"]);
    assert_eq!(matching_end(&all, 2), Some(4));

    for (broken, error) in [
        ("a: {{ .x }", "without `}}`"),
        ("a: {{ .x }}}}", "`}}` without `{{`"),
        ("a: {{ .x {{ .y }}", "inside an action"),
        ("a: {{ \"x }}", "unterminated"),
        ("{{/* x }}", "unterminated comment"),
    ] {
        let err = actions(broken).unwrap_err();
        assert!(err.contains(error), "{broken}: {err}");
    }
    for (broken, error) in [
        ("{{ if .x }}", "never closed"),
        ("{{ end }}", "without a block"),
        ("{{ else }}", "outside"),
    ] {
        let err = check_blocks(&actions(broken).unwrap()).unwrap_err();
        assert!(err.contains(error), "{broken}: {err}");
    }

    let src = "\
{{- if .on }}
m:
  labels:
    {{- include \"l\" . | nindent 4 }}
    k: {{ .Values.v }}
  list:
    - a
    {{- toYaml .Values.more | nindent 4 }}
  text: |
    {{- toYaml .Values.c | nindent 4 }}
{{- end }}
";
    let shape = skeleton(src).unwrap();
    let labels = &shape["m"]["labels"];
    assert!(
        labels["«include \"l\" . | nindent 4»"].is_null(),
        "{labels:?}"
    );
    assert_eq!(marker(&shape["m"]["labels"]["k"]), Some(".Values.v"));
    assert_eq!(shape["m"]["list"][1], "«toYaml .Values.more | nindent 4»");
    assert_eq!(shape["m"]["text"], "«toYaml .Values.c | nindent 4»\n");
}
