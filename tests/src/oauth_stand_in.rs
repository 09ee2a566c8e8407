//! GHL's token endpoint for installs, as a local stand-in: it hands out an
//! authorization code per install (a location's, or an agency's with its approved
//! locations, each of one agency) and exchanges each code once, checking what GHL
//! checks: the app's credentials, the redirect URI the app registered, and a
//! `user_type`, when one is given, that is the install's (GHL's spec has it
//! optional: left out, the token is of the install's kind).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ghl_capi::ghl::oauth::OAuthApp;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// An install the stand-in handed a code out for.
#[derive(Debug, Clone)]
struct Issued {
    user_type: &'static str,
    company_id: String,
    location_id: Option<String>,
    approved: Vec<String>,
}

#[derive(Debug, Default)]
struct Codes {
    issued: HashMap<String, Issued>,
    /// Each exchange's form, as sent.
    exchanges: Vec<HashMap<String, String>>,
}

/// The token endpoint (`POST /oauth/token`) for one app.
#[derive(Debug, Clone)]
pub struct OAuthStandIn {
    app: OAuthApp,
    redirect_uri: Option<String>,
    codes: Arc<Mutex<Codes>>,
}

fn refused(status: u16, error: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"error": error, "error_description": description}))
}

impl OAuthStandIn {
    pub fn new(app: &OAuthApp, redirect_uri: Option<&str>) -> Self {
        OAuthStandIn {
            app: app.clone(),
            redirect_uri: redirect_uri.map(str::to_owned),
            codes: Arc::default(),
        }
    }

    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("POST"))
            .and(path("/oauth/token"))
            .respond_with(self.clone())
            .mount(server)
            .await;
    }

    fn issue(&self, issued: Issued) -> String {
        let mut codes = self.codes.lock().expect("lock");
        let code = format!("code-{}", codes.issued.len() + 1);
        codes.issued.insert(code.clone(), issued);
        code
    }

    /// A code for a location of agency `company` (the *Add App* flow: the person
    /// picks a location).
    pub fn location_install(&self, company: &str, location: &str) -> String {
        self.issue(Issued {
            user_type: "Location",
            company_id: company.to_owned(),
            location_id: Some(location.to_owned()),
            approved: Vec::new(),
        })
    }

    /// A code for agency `company` and its `approved` locations.
    pub fn company_install(&self, company: &str, approved: &[&str]) -> String {
        self.issue(Issued {
            user_type: "Company",
            company_id: company.to_owned(),
            location_id: None,
            approved: approved.iter().map(|l| (*l).to_owned()).collect(),
        })
    }

    /// Each exchange's form fields, in order.
    pub fn exchanges(&self) -> Vec<HashMap<String, String>> {
        self.codes.lock().expect("lock").exchanges.clone()
    }
}

impl Respond for OAuthStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: HashMap<String, String> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        let mut codes = self.codes.lock().expect("lock");
        codes.exchanges.push(form.clone());
        let field = |name: &str| form.get(name).map(String::as_str);
        if field("client_id") != Some(self.app.client_id.as_str())
            || field("client_secret") != Some(self.app.client_secret.as_str())
        {
            return refused(401, "invalid_client", "Invalid client credentials");
        }
        if field("grant_type") != Some("authorization_code") {
            return refused(400, "unsupported_grant_type", "Unsupported grant type");
        }
        if let (Some(registered), Some(given)) = (&self.redirect_uri, field("redirect_uri"))
            && registered != given
        {
            return refused(400, "invalid_grant", "Redirect URI mismatch");
        }
        // A code is good once, whatever the exchange's outcome.
        let Some(issued) = field("code").and_then(|c| codes.issued.remove(c)) else {
            return refused(400, "invalid_grant", "Invalid authorization code");
        };
        if field("user_type").is_some_and(|t| t != issued.user_type) {
            return refused(
                400,
                "invalid_request",
                "user_type does not match the install",
            );
        }
        let mut answer = json!({"access_token": format!("at-{}", issued.company_id),
            "token_type": "Bearer", "expires_in": 86399,
            "refresh_token": format!("rt-{}", issued.company_id), "scope": "contacts.readonly",
            "userType": issued.user_type, "companyId": issued.company_id, "userId": "u1"});
        match &issued.location_id {
            Some(location) => answer["locationId"] = Value::from(location.as_str()),
            None => answer["approvedLocations"] = json!(issued.approved),
        }
        ResponseTemplate::new(200).set_body_json(answer)
    }
}
