"""Fake credentials the emulators accept. Obviously fake; never valid anywhere real."""

AZURE_API_KEY = "fake-azure-openai-key-for-tests-0001"
GEMINI_API_KEY = "fake-gemini-api-key-for-tests-0001"

AWS_REGION = "us-east-1"
AWS_ACCOUNT_ID = "000000000000"
# Long-term key pair (no session token).
AWS_ACCESS_KEY_ID = "AKIAFAKEBYOKTEST0001"
AWS_SECRET_ACCESS_KEY = "fake/secret/access/key/for/byok/tests0001"
# Temporary key pair: only valid together with its session token.
AWS_TEMP_ACCESS_KEY_ID = "ASIAFAKEBYOKTEST0002"
AWS_TEMP_SECRET_ACCESS_KEY = "fake/temporary/secret/key/for/byok/tests02"
AWS_SESSION_TOKEN = "fake-session-token-for-byok-tests-0002"

VERTEX_PROJECT = "acme-ai"
VERTEX_LOCATION = "us-central1"
VERTEX_CLIENT_EMAIL = "byok-proxy@acme-ai.iam.gserviceaccount.com"
