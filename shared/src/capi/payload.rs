//! The `payload` parameter of the Custom Audience edges (`/users` and
//! `usersreplace`): the schema, and the rows typed as Meta reads them.

use serde::Serialize;

use super::audience::{LDU_COLUMNS, Row, SCHEMA, UsersRequest};

/// The `payload` parameter of some rows: `{"schema": […], "data": [[…], …]}`, the
/// schema with the [`LDU_COLUMNS`] when the rows carry them (an audience's rows
/// all do, or none do).
#[derive(Debug)]
pub struct Payload<'a>(pub &'a [Row]);

impl Serialize for Payload<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let limited = self.0.first().is_some_and(|row| row.ldu().is_some());
        let schema: Vec<&str> = if limited {
            SCHEMA.iter().chain(&LDU_COLUMNS).copied().collect()
        } else {
            SCHEMA.to_vec()
        };
        let data: Vec<serde_json::Value> = self
            .0
            .iter()
            .map(|row| {
                let mut values: Vec<serde_json::Value> = row.0[..SCHEMA.len().min(row.0.len())]
                    .iter()
                    .map(|v| serde_json::Value::from(v.as_str()))
                    .collect();
                if limited {
                    let ldu = row.ldu().flatten();
                    let options: &[&str] = if ldu.is_some() { &["LDU"] } else { &[] };
                    let (country, state) = ldu.unwrap_or((0, 0));
                    values.extend([options.into(), country.into(), state.into()]);
                }
                serde_json::Value::Array(values)
            })
            .collect();
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("schema", &schema)?;
        map.serialize_entry("data", &data)?;
        map.end()
    }
}

impl UsersRequest {
    pub fn payload(&self) -> Payload<'_> {
        Payload(&self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_an_ldu_audience_send_the_ldu_columns_typed_and_others_none() {
        let plain = Row(vec![String::new(); SCHEMA.len()]);
        let json = |rows: &[Row]| serde_json::to_value(Payload(rows)).expect("json");
        let body = json(std::slice::from_ref(&plain));
        assert_eq!(body["schema"].as_array().map(Vec::len), Some(SCHEMA.len()));
        assert_eq!(body["data"][0].as_array().map(Vec::len), Some(SCHEMA.len()));
        let limited = plain.clone().with_ldu(Some((1, 1000)));
        let open = plain.clone().with_ldu(None);
        assert_eq!(limited.ldu(), Some(Some((1, 1000))));
        assert_eq!(open.ldu(), Some(None));
        assert_eq!(plain.ldu(), None);
        let body = json(&[limited, open]);
        assert_eq!(body["schema"][13], "DATA_PROCESSING_OPTIONS");
        assert_eq!(body["schema"][15], "DATA_PROCESSING_OPTIONS_STATE");
        assert_eq!(
            body["data"][0].as_array().expect("row")[13..],
            [serde_json::json!(["LDU"]), 1.into(), 1000.into()]
        );
        assert_eq!(
            body["data"][1].as_array().expect("row")[13..],
            [serde_json::json!([]), 0.into(), 0.into()]
        );
    }
}
