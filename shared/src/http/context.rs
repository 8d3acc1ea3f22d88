//! What every handler is given besides its request: the pool, the registry
//! and the settings, built once per cold start.

use sqlx::PgConnection;

use super::request::Request;
use crate::foundation::config::ApiSettings;
use crate::foundation::db;
use crate::foundation::error::ApiError;
use crate::registry::{Registry, Tool};

pub struct Context {
    pub pool: db::Pool,
    pub registry: &'static Registry,
    pub settings: ApiSettings,
}

impl Context {
    /// The tool a path's `{slug}` names. A slug from the path is only ever
    /// looked up in the registry.
    pub fn tool(&self, request: &Request<'_>) -> Result<&'static Tool, ApiError> {
        let tool = self
            .registry
            .tool(request.param(0))
            .ok_or(ApiError::NotFound("tool_not_found"))?;
        request.log().tool(tool.slug.as_str());
        Ok(tool)
    }

    /// Runs one request's reads (see [`db::Pool::read`]).
    pub async fn read<T>(
        &self,
        read: impl AsyncFnOnce(&mut PgConnection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.pool.read(read).await
    }
}
