//! Topic filters and the topic hierarchy (`{site}/{device}/{sensor}/{type}`) (pure).

use std::collections::BTreeMap;

/// Checks an MQTT subscription filter: `+` and `#` occupy a whole level, `#` only the last.
/// Shared subscriptions (`$share/<group>/<filter>`) are accepted.
pub(crate) fn check_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("a topic filter must not be empty".into());
    }
    if filter.len() > 65_535 || filter.contains('\0') {
        return Err("a topic filter must be at most 65535 bytes, without NUL".into());
    }
    let inner = match filter.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((group, f)) if !group.is_empty() && !group.contains(['+', '#']) => f,
            _ => return Err("a shared subscription is `$share/<group>/<filter>`".into()),
        },
        None => filter,
    };
    let levels: Vec<&str> = inner.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "`{filter}`: `#` must be a whole level and the last one"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!("`{filter}`: `+` must be a whole level"));
        }
    }
    Ok(())
}

/// Names of the levels of the topic hierarchy, e.g. `{site}/{device}/{sensor}/{type}`; a level
/// written `+` is not named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicPattern {
    levels: Vec<Option<String>>,
}

impl TopicPattern {
    pub(crate) fn parse(pattern: &str) -> Result<Self, String> {
        let mut levels = Vec::new();
        for level in pattern.split('/') {
            if level == "+" {
                levels.push(None);
            } else if let Some(name) = level.strip_prefix('{').and_then(|l| l.strip_suffix('}'))
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                if levels.iter().flatten().any(|n: &String| n == name) {
                    return Err(format!("level `{{{name}}}` is named twice"));
                }
                levels.push(Some(name.to_owned()));
            } else {
                return Err(format!(
                    "`{pattern}`: each level is `{{name}}` or `+`, got `{level}`"
                ));
            }
        }
        Ok(Self { levels })
    }

    /// The named levels of `topic`, when it has as many levels as the pattern.
    pub(crate) fn capture<'t>(&self, topic: &'t str) -> Option<BTreeMap<String, &'t str>> {
        let parts: Vec<&str> = topic.split('/').collect();
        if parts.len() != self.levels.len() {
            return None;
        }
        Some(
            self.levels
                .iter()
                .zip(parts)
                .filter_map(|(name, part)| name.as_ref().map(|n| (n.clone(), part)))
                .collect(),
        )
    }

    /// Checks that every `{name}` of `template` is a level of the pattern.
    pub(crate) fn check_template(&self, template: &str) -> Result<(), String> {
        for name in placeholders(template)? {
            if !self.levels.iter().flatten().any(|n| *n == name) {
                return Err(format!("`{{{name}}}` is not a level of the topic pattern"));
            }
        }
        Ok(())
    }
}

fn placeholders(template: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("`{template}`: unclosed `{{`"));
        };
        out.push(after[..close].to_owned());
        rest = &after[close + 1..];
    }
    Ok(out)
}

/// `template` with each `{name}` replaced by that level of the topic; `None` when a level is
/// missing or empty.
pub(crate) fn render(template: &str, levels: &BTreeMap<String, &str>) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let value = levels.get(&after[..close]).filter(|v| !v.is_empty())?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_the_mqtt_rules() {
        for ok in ["a/b", "a/+/c", "a/#", "#", "+", "$share/g/a/+/c"] {
            assert!(check_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a/b#", "a+/b", "$share//a", "$share/g"] {
            assert!(check_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_hierarchy_names_the_levels_of_a_topic() {
        let p = TopicPattern::parse("{site}/{device}/{sensor}/{type}").expect("valid");
        let levels = p
            .capture("plant-a/press-1/P1-TEMP/temperature")
            .expect("four levels");
        assert_eq!(levels["sensor"], "P1-TEMP");
        assert_eq!(levels["type"], "temperature");
        assert!(p.capture("plant-a/press-1/P1-TEMP").is_none());
        assert_eq!(
            render("{device}-{sensor}", &levels).as_deref(),
            Some("press-1-P1-TEMP")
        );
        assert!(p.check_template("{device}-{sensor}").is_ok());
        assert!(p.check_template("{line}").is_err());
        assert!(TopicPattern::parse("{a}/b").is_err());
        assert!(TopicPattern::parse("{a}/{a}").is_err());
        let unnamed = TopicPattern::parse("+/{sensor}").expect("valid");
        assert_eq!(unnamed.capture("x/S1").expect("two levels")["sensor"], "S1");
    }
}
