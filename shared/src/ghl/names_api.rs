//! The reads behind a location's names: its pipelines and their stages (`GET
//! /opportunities/pipelines?locationId=`), its contact custom fields (`GET
//! /locations/{locationId}/customFields`) and its calendars (`GET
//! /calendars/?locationId=`), and its tags for `mapping init` (`GET
//! /locations/{locationId}/tags`), each behind its own read scope
//! (`reference/ghl-api.md` §8.4; the calendars API its own version header).

use reqwest::Method;
use serde::Deserialize;

use super::budget::Use;
use super::client::GhlClient;
use super::names::{FieldName, LocationNames, Named, Pipeline};
use super::reader::GhlError;
use super::tokens::TokenSource;

#[derive(Deserialize)]
struct Tags {
    #[serde(default)]
    tags: Vec<Named>,
}

#[derive(Deserialize)]
struct Calendars {
    #[serde(default)]
    calendars: Vec<Named>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomFields {
    #[serde(default)]
    custom_fields: Vec<FieldName>,
}

#[derive(Deserialize)]
struct Pipelines {
    #[serde(default)]
    pipelines: Vec<Pipeline>,
}

impl<T: TokenSource> GhlClient<T> {
    /// The location's names: three calls, within its rate budget.
    pub async fn location_names(&self, location_id: &str) -> Result<LocationNames, GhlError> {
        Ok(LocationNames {
            pipelines: self.pipelines(location_id).await?,
            custom_fields: self.custom_fields(location_id).await?,
            calendars: self.calendars(location_id).await?,
        })
    }

    /// `GET /opportunities/pipelines?locationId=` (`opportunities.readonly`).
    pub async fn pipelines(&self, location_id: &str) -> Result<Vec<Pipeline>, GhlError> {
        let query = [("locationId", location_id)];
        let path = "/opportunities/pipelines";
        let answer: Pipelines = self
            .call((location_id, Use::Names), Method::GET, path, &query, None)
            .await?;
        Ok(answer.pipelines)
    }

    /// `GET /locations/{id}/customFields?model=contact`
    /// (`locations/customFields.readonly`).
    pub async fn custom_fields(&self, location_id: &str) -> Result<Vec<FieldName>, GhlError> {
        let path = format!("/locations/{}/customFields", super::wire::id(location_id)?);
        let query = [("model", "contact")];
        let answer: CustomFields = self
            .call((location_id, Use::Names), Method::GET, &path, &query, None)
            .await?;
        Ok(answer.custom_fields)
    }

    /// `GET /calendars/?locationId=` (`calendars.readonly`).
    pub async fn calendars(&self, location_id: &str) -> Result<Vec<Named>, GhlError> {
        let query = [("locationId", location_id)];
        let answer: Calendars = self
            .call(
                (location_id, Use::Names),
                Method::GET,
                "/calendars/",
                &query,
                None,
            )
            .await?;
        Ok(answer.calendars)
    }

    /// `GET /locations/{id}/tags` (`locations/tags.readonly`): the tags a person
    /// can choose from (`mapping init`'s audiences).
    pub async fn tags(&self, location_id: &str) -> Result<Vec<Named>, GhlError> {
        let path = format!("/locations/{}/tags", super::wire::id(location_id)?);
        let answer: Tags = self
            .call((location_id, Use::Names), Method::GET, &path, &[], None)
            .await?;
        Ok(answer.tags)
    }
}
