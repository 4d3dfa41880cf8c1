//! How weir reaches a Kafka cluster: the bootstrap servers plus any
//! librdkafka property (TLS and SASL included), from `KEY=VALUE` flags or a
//! properties file. Secrets are never printed: [`KafkaConfig`]'s `Display`
//! shows every property whose name looks secret as `***`.

use std::fmt;
use std::path::Path;

use rdkafka::ClientConfig;
use weir::ConfigError;

/// The cluster and client properties of one job's Kafka connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub bootstrap: String,
    /// librdkafka properties, in the order given; later ones win.
    pub properties: Vec<(String, String)>,
}

/// Property names whose values are never shown.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "sasl.jaas.config", "key.pem", "token"]
        .iter()
        .any(|s| key.contains(s))
}

impl KafkaConfig {
    /// The cluster at `bootstrap`, with no other properties.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap: bootstrap.into(),
            properties: Vec::new(),
        }
    }

    /// Adds one `KEY=VALUE` property (a `--kafka-config` flag).
    pub fn set_pair(&mut self, pair: &str) -> Result<(), ConfigError> {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(ConfigError::new(format!(
                "--kafka-config `{}`: write KEY=VALUE (a librdkafka property)",
                shown(pair.trim(), "")
            )));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(ConfigError::new(
                "--kafka-config: the property name before `=` is empty",
            ));
        }
        self.properties
            .push((key.to_string(), value.trim().to_string()));
        Ok(())
    }

    /// Adds the properties of a file: `KEY=VALUE` lines, `#` comments and
    /// blank lines ignored (a Java client's `.properties`, simple form).
    pub fn add_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!(
                "--kafka-config-file {}: {e}: give a readable properties file",
                path.display()
            ))
        })?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            self.set_pair(line)
                .map_err(|e| ConfigError::new(format!("{}:{}: {e}", path.display(), n + 1)))?;
        }
        Ok(())
    }

    /// The value the user gave `key`, if any (the last one wins, as in
    /// [`KafkaConfig::client`]).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A librdkafka client configuration: the bootstrap servers, then
    /// `defaults` (weir's own choices for this kind of client), then the
    /// user's properties, which override both.
    pub fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }
}

/// A property's value as it may be printed.
fn shown<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret(key) {
        "***"
    } else {
        value
    }
}

impl fmt::Display for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bootstrap.servers={}", self.bootstrap)?;
        for (key, value) in &self.properties {
            write!(f, " {key}={}", shown(key, value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_parse_and_secrets_never_show() {
        let mut c = KafkaConfig::new("127.0.0.1:9092");
        c.set_pair("security.protocol=SASL_SSL").expect("a pair");
        c.set_pair("sasl.password = hunter2").expect("a pair");
        assert_eq!(
            c.to_string(),
            "bootstrap.servers=127.0.0.1:9092 security.protocol=SASL_SSL sasl.password=***"
        );
        let e = c.set_pair("no-equals").expect_err("not a pair").to_string();
        assert!(e.contains("KEY=VALUE"), "{e}");
        assert!(c.set_pair("=x").is_err());
    }

    #[test]
    fn a_file_adds_its_lines_and_names_a_bad_one() {
        let dir = std::env::temp_dir().join(format!("weir-kafka-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("client.properties");
        std::fs::write(&path, "# comment\n\nacks=all\nssl.key.password=s3cret\n").expect("write");
        let mut c = KafkaConfig::new("b:1");
        c.add_file(&path).expect("reads");
        assert_eq!(c.properties.len(), 2);
        assert!(!c.to_string().contains("s3cret"));
        std::fs::write(&path, "acks=all\nbroken line\n").expect("write");
        let e = c.add_file(&path).expect_err("bad line").to_string();
        assert!(e.contains("client.properties:2"), "{e}");
        let missing = KafkaConfig::new("b:1")
            .add_file(&dir.join("none"))
            .expect_err("missing");
        assert!(missing.to_string().contains("readable"), "{missing}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
