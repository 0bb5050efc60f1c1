// The API docs page: Swagger UI on the served OpenAPI document (read with the session cookie).
// A file, not an inline script: the CSP runs no inline code. No validator: nothing leaves this origin.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", validatorUrl: null });
