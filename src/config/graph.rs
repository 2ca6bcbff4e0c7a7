//! Checks on the dependency graph: every dependency exists, none is the service itself, and
//! there is no cycle (which would leave a start order undefined).
//!
//! Pure over names, so the caller decides where each problem points in the files.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::suggest::did_you_mean;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Problem<'a> {
    /// `service`'s dependency number `index` names no service.
    Unknown { service: &'a str, index: usize, suggestion: Option<&'a str> },
    /// `service`'s dependency number `index` is itself.
    SelfDependency { service: &'a str, index: usize },
    /// A cycle `path[0] -> path[1] -> … -> path[0]`, starting at its smallest name; `index`
    /// is the position of `path[1]` in `path[0]`'s dependencies.
    Cycle { path: Vec<&'a str>, index: usize },
}

/// Every problem, in service order, one cycle per strongly connected component.
pub(super) fn check<'a>(deps: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<Problem<'a>> {
    let mut problems = Vec::new();
    // Only edges between distinct, existing services take part in the cycle search, so each
    // problem is reported once, as what it is.
    let mut edges: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (&service, list) in deps {
        let out = edges.entry(service).or_default();
        for (index, &dep) in list.iter().enumerate() {
            if dep == service {
                problems.push(Problem::SelfDependency { service, index });
            } else if deps.contains_key(dep) {
                out.push(dep);
            } else {
                let suggestion = did_you_mean(dep, deps.keys().copied());
                problems.push(Problem::Unknown { service, index, suggestion });
            }
        }
    }
    for component in strongly_connected(&edges) {
        if component.len() < 2 {
            continue;
        }
        let path = cycle_through(&edges, &component);
        if let [first, second, ..] = path[..] {
            let index = deps.get(first).and_then(|list| list.iter().position(|&d| d == second));
            problems.push(Problem::Cycle { path, index: index.unwrap_or(0) });
        }
    }
    problems
}

/// Tarjan's algorithm; each component as a sorted set.
fn strongly_connected<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Vec<BTreeSet<&'a str>> {
    struct Tarjan<'a, 'e> {
        edges: &'e BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<&'a str>>,
    }
    impl<'a> Tarjan<'a, '_> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for &w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.insert(w);
                    if w == v {
                        break;
                    }
                }
                self.out.push(component);
            }
        }
    }
    let mut t = Tarjan {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for &v in edges.keys() {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// A shortest cycle through the component's smallest name, found by breadth-first search
/// inside the component (where every node reaches every other, so one exists).
fn cycle_through<'a>(
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    component: &BTreeSet<&'a str>,
) -> Vec<&'a str> {
    let Some(&start) = component.first() else { return Vec::new() };
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in edges.get(v).into_iter().flatten() {
            if !component.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start];
                let mut at = v;
                while at != start {
                    path.push(at);
                    match parent.get(at) {
                        Some(&p) => at = p,
                        None => break,
                    }
                }
                path[1..].reverse();
                path.push(start);
                return path;
            }
            if !parent.contains_key(w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph<'a>(spec: &[(&'a str, &[&'a str])]) -> BTreeMap<&'a str, Vec<&'a str>> {
        spec.iter().map(|(k, v)| (*k, v.to_vec())).collect()
    }

    #[test]
    fn a_dag_is_fine() {
        let g = graph(&[("web", &["db", "cache"]), ("db", &[]), ("cache", &["db"])]);
        assert_eq!(check(&g), []);
    }

    #[test]
    fn unknown_and_self() {
        let g = graph(&[("web", &["dbb", "web", "nothing"]), ("db", &[])]);
        assert_eq!(
            check(&g),
            [
                Problem::Unknown { service: "web", index: 0, suggestion: Some("db") },
                Problem::SelfDependency { service: "web", index: 1 },
                Problem::Unknown { service: "web", index: 2, suggestion: None },
            ]
        );
    }

    #[test]
    fn cycles_are_named_from_their_smallest_member() {
        let g = graph(&[
            ("c", &["a"]),
            ("b", &["x", "c"]),
            ("a", &["b"]),
            ("x", &[]),
            ("p", &["q"]),
            ("q", &["p"]),
        ]);
        assert_eq!(
            check(&g),
            [
                Problem::Cycle { path: vec!["a", "b", "c", "a"], index: 0 },
                Problem::Cycle { path: vec!["p", "q", "p"], index: 0 },
            ]
        );
    }

    #[test]
    fn the_shortest_cycle_is_shown() {
        // a -> b -> a and a -> c -> d -> a share a component.
        let g = graph(&[("a", &["c", "b"]), ("b", &["a"]), ("c", &["d"]), ("d", &["a"])]);
        assert_eq!(check(&g), [Problem::Cycle { path: vec!["a", "b", "a"], index: 1 }]);
    }
}
