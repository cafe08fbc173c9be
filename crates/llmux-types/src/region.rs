//! Regions (ISO 3166-1 alpha-2) and the region sets providers declare.

use std::fmt;

/// A two-letter region code, upper case.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region([u8; 2]);

impl Region {
    pub fn parse(code: &str) -> Option<Region> {
        let bytes = code.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        Some(Region([bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase()]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a provider serves: `"*"` (all), `"XX"` (include), `"!XX"` (exclude).
/// A set of only exclusions means "all except".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegionSet {
    all: bool,
    include: Vec<Region>,
    exclude: Vec<Region>,
}

impl RegionSet {
    /// Every region.
    pub fn everywhere() -> RegionSet {
        RegionSet { all: true, include: Vec::new(), exclude: Vec::new() }
    }

    /// Parses the config form. Returns the offending entry on error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<RegionSet, String> {
        let mut set = RegionSet::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry == "*" {
                set.all = true;
            } else if let Some(code) = entry.strip_prefix('!') {
                set.exclude.push(Region::parse(code).ok_or_else(|| entry.to_owned())?);
            } else {
                set.include.push(Region::parse(entry).ok_or_else(|| entry.to_owned())?);
            }
        }
        if set.include.is_empty() && !set.exclude.is_empty() {
            set.all = true;
        }
        Ok(set)
    }

    /// Whether a caller from `region` may be served. A caller with no known region
    /// is served by any provider that does not restrict itself to an include list.
    pub fn serves(&self, region: Option<Region>) -> bool {
        match region {
            Some(region) => !self.exclude.contains(&region) && (self.all || self.include.contains(&region)),
            None => self.all,
        }
    }

    /// The config form, for display (`["*", "!CN"]`).
    pub fn to_entries(&self) -> Vec<String> {
        let mut entries = Vec::new();
        let exclusions_only = self.include.is_empty() && !self.exclude.is_empty();
        if self.all && !exclusions_only {
            entries.push("*".to_owned());
        }
        entries.extend(self.include.iter().map(|r| r.to_string()));
        entries.extend(self.exclude.iter().map(|r| format!("!{r}")));
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(code: &str) -> Option<Region> {
        Region::parse(code)
    }

    #[test]
    fn star_serves_everyone() {
        let set = RegionSet::parse(&["*"]).unwrap();
        assert!(set.serves(region("CN")));
        assert!(set.serves(None));
    }

    #[test]
    fn exclusions_only_means_all_except() {
        let set = RegionSet::parse(&["!CN", "!RU"]).unwrap();
        assert!(set.serves(region("US")));
        assert!(!set.serves(region("cn")));
        assert!(set.serves(None));
        assert_eq!(set.to_entries(), vec!["!CN", "!RU"]);
    }

    #[test]
    fn include_list_restricts() {
        let set = RegionSet::parse(&["CN", "HK"]).unwrap();
        assert!(set.serves(region("CN")));
        assert!(!set.serves(region("US")));
        assert!(!set.serves(None));
    }

    #[test]
    fn bad_entries_are_reported() {
        assert_eq!(RegionSet::parse(&["CHN"]), Err("CHN".to_owned()));
        assert_eq!(RegionSet::parse(&["!1"]), Err("!1".to_owned()));
    }
}
