"""Teaches drf-spectacular the API token scheme (imported by ``ApiConfig.ready``), so the OpenAPI schema and
Swagger UI offer "Authorize" with a bearer token."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A token from /api/tokens/"}
