"""AstroCode: astronomy code generation behind an OpenAI-compatible API, with vLLM metrics."""
