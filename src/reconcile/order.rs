//! Dependency order over a table of services.

use std::collections::{BTreeMap, BTreeSet};

/// The table's names with every service after the services it depends on; ties are broken
/// by name so plans are deterministic. Dependencies outside the table are ignored (a removed
/// service no longer constrains anything). A cycle cannot come from a validated config, but
/// the observed table mixes specs of different config generations, so a cycle must still
/// terminate: a name is marked before its dependencies are visited.
pub(super) fn dependencies_first<'a, T>(
    table: &'a BTreeMap<String, T>,
    deps: impl Fn(&'a T) -> &'a [String],
) -> Vec<&'a str> {
    fn visit<'a, T>(
        name: &'a str,
        table: &'a BTreeMap<String, T>,
        deps: &impl Fn(&'a T) -> &'a [String],
        seen: &mut BTreeSet<&'a str>,
        order: &mut Vec<&'a str>,
    ) {
        let Some((name, entry)) = table.get_key_value(name) else {
            return;
        };
        if !seen.insert(name) {
            return;
        }
        for dep in deps(entry) {
            visit(dep, table, deps, seen, order);
        }
        order.push(name);
    }

    let mut seen = BTreeSet::new();
    let mut order = Vec::with_capacity(table.len());
    for name in table.keys() {
        visit(name, table, &deps, &mut seen, &mut order);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(edges: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(n, d)| (n.to_string(), d.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn dependencies_come_first() {
        let t = table(&[("a", &["c"]), ("b", &[]), ("c", &["b"])]);
        assert_eq!(dependencies_first(&t, |d| d), ["b", "c", "a"]);
    }

    #[test]
    fn unknown_dependencies_are_ignored() {
        let t = table(&[("a", &["gone"])]);
        assert_eq!(dependencies_first(&t, |d| d), ["a"]);
    }

    #[test]
    fn a_cycle_terminates_with_every_name_once() {
        let t = table(&[("a", &["b"]), ("b", &["a"])]);
        let order = dependencies_first(&t, |d| d);
        assert_eq!(order.len(), 2);
    }
}
