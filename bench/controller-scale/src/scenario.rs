//! The run's scenario: `classes` user classes with uneven weights, so the
//! split's class rounding (the costly part of placement) is exercised and
//! checked. The workers never send a request: the host only has to be a
//! valid URL.

use std::fmt::Write;

/// Class weights, cycled: uneven on purpose (the default two classes: 3:1).
const WEIGHTS: [u32; 10] = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];

/// The weights of the first `classes` classes.
pub fn weights(classes: usize) -> Vec<u32> {
    WEIGHTS.iter().copied().cycle().take(classes).collect()
}

/// Scenario YAML with `classes` user classes, one request each.
pub fn yaml(classes: usize) -> String {
    let mut yaml = String::from("name: controller-scale\nhost: http://127.0.0.1:9\nusers:\n");
    for (index, weight) in weights(classes).into_iter().enumerate() {
        let _ = write!(
            yaml,
            "  - name: class{index}\n    weight: {weight}\n    tasks:\n      - request: {{method: GET, path: /c{index}}}\n"
        );
    }
    yaml
}
