"""Realistic data planes for the capacity tests, named as provisioner/examples/capacity.rs
names them: plane `dp-D` holds `s3://acme-datalake-prod/D/curated/`,
`s3://acme-datalake-prod/D/raw/` and the Glue databases `D_curated`, `D_raw`, for forty
business domains D. The platform's defaults apply (seven platform folders, Bedrock)."""

DOMAINS = [
    "marketing", "finance", "sales", "supply-chain", "customer-care", "risk", "hr",
    "procurement", "logistics", "pricing", "fraud", "payments", "treasury", "legal",
    "compliance", "audit", "product", "growth", "crm", "ecommerce", "retail", "wholesale",
    "inventory", "manufacturing", "quality", "research", "clinical", "security", "it-ops",
    "facilities", "real-estate", "tax", "investor-relations", "partnerships", "loyalty",
    "media", "content", "support", "billing", "forecasting",
    # Planes nobody in the capacity tests holds: other users' data.
    "hr-payroll", "executive", "mergers", "board", "internal-audit",
]
HELD = 40
ACCOUNT = "123456789012"
REGION = "us-east-1"
DATA_BUCKET = "acme-datalake-prod"
PLATFORM_BUCKET = "acme-platform"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/PlatformInfraRole"


def db_names(domain):
    d = domain.replace("-", "_")
    return [f"{d}_curated", f"{d}_raw"]


def plane(domain):
    return {
        "id": f"dp-{domain}",
        "s3": [f"s3://{DATA_BUCKET}/{domain}/curated/", f"s3://{DATA_BUCKET}/{domain}/raw/"],
        "glue_databases": db_names(domain),
    }


def capacity_platform(n, *, settings=None, aws=None):
    """User `alice.smith` holds the first `n` planes; `bob` holds the planes after the
    first forty."""
    return {
        "settings": {"syntasa_session_policy_enabled": "true", **(settings or {})},
        "aws": {
            "region": REGION,
            "account_id": ACCOUNT,
            "session_policy_role_arn": ROLE_ARN,
            "platform_bucket": PLATFORM_BUCKET,
            "sts_endpoint": "http://127.0.0.1:9",
            **(aws or {}),
        },
        "workspaces": [{"id": "ws-marketing"}],
        "data_planes": [plane(d) for d in DOMAINS],
        "users": [
            {"id": "alice.smith", "data_planes": [f"dp-{d}" for d in DOMAINS[:n]]},
            {"id": "bob", "data_planes": [f"dp-{d}" for d in DOMAINS[HELD:]]},
        ],
    }
