//! Where each field of a YAML document is: a map from field path to line and column, so that
//! problems found after parsing (types, rules) can point into the file.
//!
//! serde_yaml parses the data; it keeps no positions. yaml-rust2's event stream has them. Events are
//! read one by one (no recursion, no alias expansion), so nesting depth and alias bombs cost nothing.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use yaml_rust2::Event;
use yaml_rust2::parser::Parser;

use crate::topology::diagnostic::{FieldPath, Location, Segment};

/// Field path → position of the key (for mapping entries) or of the item (for sequence entries).
#[derive(Debug, Default)]
pub struct Locations {
    map: HashMap<FieldPath, Location>,
    /// Keys met a second time in the same mapping, in document order.
    duplicates: Vec<(FieldPath, Location)>,
}

enum Frame {
    /// In a mapping; `key` is set after a key was read and before its value.
    Mapping {
        key: Option<String>,
    },
    Sequence {
        next: usize,
    },
}

impl Locations {
    /// Indexes the first document of `text`. A document that does not parse gives what was read.
    pub fn index(text: &str) -> Self {
        let mut out = Locations::default();
        let mut parser = Parser::new_from_str(text);
        let mut stack: Vec<Frame> = Vec::new();
        let mut path = FieldPath::root();
        while let Ok((event, mark)) = parser.next_token() {
            let loc = Location {
                line: mark.line(),
                column: mark.col() + 1,
            };
            // Is this event a key of the enclosing mapping?
            if let Some(Frame::Mapping { key }) = stack.last_mut()
                && key.is_none()
            {
                match event {
                    Event::Scalar(ref k, ..) => {
                        *key = Some(k.clone());
                        // A block mapping's start event is marked at its first `:`; the mapping
                        // starts at its first key (a flow mapping's `{` comes before it).
                        if let Some(start) = out.map.get_mut(&path) {
                            *start = (*start).min(loc);
                        }
                        let key_path = path.key(k.clone());
                        match out.map.entry(key_path) {
                            Entry::Occupied(e) => out.duplicates.push((e.key().clone(), loc)),
                            Entry::Vacant(e) => {
                                e.insert(loc);
                            }
                        }
                        continue;
                    }
                    Event::MappingEnd => {
                        stack.pop();
                        path.0.pop();
                        Self::value_done(&mut stack);
                        continue;
                    }
                    // Complex keys are unusual in a topology; index their contents under a placeholder.
                    _ => *key = Some(String::from("?")),
                }
            }
            match event {
                Event::StreamEnd | Event::DocumentEnd => break,
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let seg = Self::enter(&mut stack);
                    if let Some(seg) = seg {
                        path.0.push(seg.clone());
                        out.map.entry(path.clone()).or_insert(loc);
                    } else {
                        path.0.push(Segment::Key(String::new()));
                    }
                    stack.push(match event {
                        Event::MappingStart(..) => Frame::Mapping { key: None },
                        _ => Frame::Sequence { next: 0 },
                    });
                }
                Event::SequenceEnd => {
                    stack.pop();
                    path.0.pop();
                    Self::value_done(&mut stack);
                }
                Event::Scalar(..) | Event::Alias(..) => {
                    if let Some(seg) = Self::enter(&mut stack) {
                        out.map.entry(path_with(&path, seg)).or_insert(loc);
                    }
                    Self::value_done(&mut stack);
                }
                _ => {}
            }
        }
        // The root container was pushed with a placeholder segment; drop it from every path.
        let unroot = |(mut p, l): (FieldPath, Location)| {
            if p.0.first() == Some(&Segment::Key(String::new())) {
                p.0.remove(0);
                Some((p, l))
            } else {
                None
            }
        };
        out.map = out.map.into_iter().filter_map(unroot).collect();
        out.duplicates = out.duplicates.into_iter().filter_map(unroot).collect();
        out
    }

    /// The first key that a mapping of the file sets twice, and where it is set the second time.
    pub fn first_duplicate(&self) -> Option<(FieldPath, Location)> {
        self.duplicates.first().cloned()
    }

    /// The segment a value starting now gets in its parent, or `None` at the root.
    fn enter(stack: &mut [Frame]) -> Option<Segment> {
        match stack.last_mut()? {
            Frame::Mapping { key } => Some(Segment::Key(key.clone().unwrap_or_default())),
            Frame::Sequence { next } => Some(Segment::Index(*next)),
        }
    }

    /// A value finished: the parent mapping waits for a key again, the parent sequence moves on.
    fn value_done(stack: &mut [Frame]) {
        match stack.last_mut() {
            Some(Frame::Mapping { key }) => *key = None,
            Some(Frame::Sequence { next }) => *next += 1,
            None => {}
        }
    }

    /// The position of `path`, or of its nearest ancestor that is in the file.
    pub fn find(&self, path: &FieldPath) -> Option<Location> {
        let mut p = path.clone();
        loop {
            if let Some(l) = self.map.get(&p) {
                return Some(*l);
            }
            p.0.pop()?;
        }
    }

    /// The position of `path` itself, if the file has it.
    #[cfg(test)]
    pub fn exact(&self, path: &FieldPath) -> Option<Location> {
        self.map.get(path).copied()
    }
}

fn path_with(path: &FieldPath, seg: Segment) -> FieldPath {
    let mut p = path.clone();
    p.0.push(seg);
    p
}

#[cfg(test)]
mod tests {
    use super::Locations;
    use crate::topology::diagnostic::{FieldPath, Location};

    #[test]
    fn finds_keys_items_and_nearest_ancestor() {
        let text = "name: a\nzones:\n  - name: z1\n    cidr: 10.0.0.0/24\n  - name: z2\nbrokers:\n  overrides:\n    min.insync.replicas: 2\n";
        let l = Locations::index(text);
        let at = |line, column| Some(Location { line, column });
        assert_eq!(l.exact(&FieldPath::keys(&["name"])), at(1, 1));
        // A block mapping inside a list starts on the line of its dash.
        let item = l.exact(&FieldPath::keys(&["zones"]).index(1));
        assert_eq!(item.map(|l| l.line), Some(5));
        assert_eq!(
            l.exact(&FieldPath::keys(&["zones"]).index(0).key("cidr")),
            at(4, 5)
        );
        assert_eq!(
            l.exact(&FieldPath::keys(&[
                "brokers",
                "overrides",
                "min.insync.replicas"
            ])),
            at(8, 5)
        );
        assert_eq!(
            l.find(&FieldPath::keys(&["brokers", "overrides", "missing"])),
            at(7, 3)
        );
    }

    #[test]
    fn flow_style_and_deep_nesting_do_not_break_it() {
        let l = Locations::index("a: {b: [1, {c: 2}]}\n");
        assert_eq!(
            l.exact(&FieldPath::keys(&["a", "b"]).index(1).key("c")),
            Some(Location {
                line: 1,
                column: 13
            })
        );
        let deep = "[".repeat(100_000);
        let _ = Locations::index(&deep);
    }
}
