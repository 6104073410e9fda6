"""The inference table: what each endpoint host implies about signing (service, region)."""

from __future__ import annotations

import pytest

from sigv4_proxy.endpoints import Endpoint, agentcore_runtime_arn, host_of, infer, is_loopback, is_region

AGENTCORE_ARN = "arn:aws:bedrock-agentcore:us-west-2:123456789012:runtime/my_agent-AbCdEf1234"
AGENTCORE_URL = (
    "https://bedrock-agentcore.us-west-2.amazonaws.com/runtimes/"
    "arn%3Aaws%3Abedrock-agentcore%3Aus-west-2%3A123456789012%3Aruntime%2Fmy_agent-AbCdEf1234/invocations"
    "?qualifier=DEFAULT"
)

TABLE = [
    # API Gateway
    ("https://abc123.execute-api.us-east-1.amazonaws.com/prod/mcp", "execute-api", "us-east-1"),
    ("abc123.execute-api.eu-central-1.amazonaws.com", "execute-api", "eu-central-1"),
    ("https://vpce-0a1b-xyz.execute-api.us-east-1.vpce.amazonaws.com/prod", "execute-api", "us-east-1"),
    ("https://abc123.execute-api.cn-north-1.amazonaws.com.cn/prod", "execute-api", "cn-north-1"),
    ("https://abc123.execute-api.us-gov-west-1.amazonaws.com/", "execute-api", "us-gov-west-1"),
    # Lambda function URLs
    ("https://abcdefghij.lambda-url.us-west-2.on.aws/", "lambda", "us-west-2"),
    ("https://abcdefghij.lambda-url.ap-southeast-2.on.aws/mcp", "lambda", "ap-southeast-2"),
    # Bedrock AgentCore
    ("https://bedrock-agentcore.us-east-1.amazonaws.com/mcp", "bedrock-agentcore", "us-east-1"),
    (AGENTCORE_URL, "bedrock-agentcore", "us-west-2"),
    ("https://gw-1a2b.gateway.bedrock-agentcore.eu-west-1.amazonaws.com/mcp", "bedrock-agentcore", "eu-west-1"),
    # <svc>.<region>.api.aws
    ("https://lambda.us-east-1.api.aws/", "lambda", "us-east-1"),
    ("s3.dualstack.eu-west-1.api.aws", "s3", "eu-west-1"),
    # Aurora DSQL
    ("abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws", "dsql", "us-east-1"),
    ("postgresql://admin@iiabc.dsql-fnh4.eu-west-1.on.aws:5432/postgres", "dsql", "eu-west-1"),
    # <svc>.<region>.amazonaws.com(.cn)
    ("https://sts.us-east-2.amazonaws.com", "sts", "us-east-2"),
    ("https://ec2.cn-northwest-1.amazonaws.com.cn", "ec2", "cn-northwest-1"),
    ("https://lambda-fips.us-gov-east-1.amazonaws.com", "lambda", "us-gov-east-1"),
    ("https://s3.dualstack.us-east-1.amazonaws.com", "s3", "us-east-1"),
    ("https://bucket.s3.us-west-2.amazonaws.com/key", "s3", "us-west-2"),
    ("mydb.c9akciq32.us-east-1.rds.amazonaws.com:5432", "rds", "us-east-1"),
    ("https://my-cluster.cluster-ro-c9akciq32.eu-west-1.rds.amazonaws.com", "rds", "eu-west-1"),
    # global endpoints: the service, no region
    ("https://sts.amazonaws.com/", "sts", None),
    ("https://iam.amazonaws.com/", "iam", None),
    # no inference: custom domains, loopback, IPs, look-alikes
    ("https://mcp.example.com/mcp", None, None),
    ("https://api.mycompany.io/execute-api/us-east-1", None, None),
    ("http://127.0.0.1:8080/mcp", None, None),
    ("http://localhost:8080/mcp", None, None),
    ("http://[::1]:8080/mcp", None, None),
    ("https://10.0.0.5/mcp", None, None),
    ("https://x.on.aws/", None, None),
    ("https://amazonaws.com.evil.example/", None, None),
    ("https://execute-api.us-east-1.amazonaws.com.evil.example/", None, None),
    ("", None, None),
    ("https://[not-an-ip/", None, None),
]


@pytest.mark.parametrize(("url", "service", "region"), TABLE)
def test_inference_table(url: str, service: str | None, region: str | None) -> None:
    assert infer(url) == Endpoint(service, region)


def test_endpoint_is_a_service_region_tuple() -> None:
    service, region = infer("https://abc.execute-api.us-east-1.amazonaws.com")
    assert (service, region) == ("execute-api", "us-east-1")


def test_agentcore_runtime_arn_is_decoded() -> None:
    assert agentcore_runtime_arn(AGENTCORE_URL) == AGENTCORE_ARN
    assert agentcore_runtime_arn("https://bedrock-agentcore.us-east-1.amazonaws.com/mcp") is None


@pytest.mark.parametrize(
    "region",
    ["us-east-1", "eu-central-2", "us-gov-west-1", "us-iso-east-1", "us-isob-east-1", "cn-north-1", "il-central-1"],
)
def test_is_region(region: str) -> None:
    assert is_region(region)


@pytest.mark.parametrize("label", ["execute-api", "lambda-url", "dsql-fnh4", "us-east", "useast1", "vpce", "abc-1"])
def test_is_not_region(label: str) -> None:
    assert not is_region(label)


def test_loopback_and_hosts() -> None:
    assert is_loopback("http://127.0.0.1:9") and is_loopback("localhost") and is_loopback("http://[::1]/")
    assert is_loopback("api.localhost") and not is_loopback("example.com") and not is_loopback("10.0.0.1")
    assert host_of("HTTPS://ABC.Example.COM.:443/x") == "abc.example.com"
