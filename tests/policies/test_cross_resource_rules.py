"""Rules that read more than one resource (through the context), plus IAM documents."""

from __future__ import annotations

from infra.policies import ResourceView, Violation, check_resource, rule_by_id
from tests.policies import cases
from tests.policies.cases import KEY_ARN, TAGS, changed, policy_document, view

RDS = "aws:rds/instance:Instance"
PARAMS = "aws:rds/parameterGroup:ParameterGroup"
BUCKET = "aws:s3/bucket:Bucket"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
SG = "aws:ec2/securityGroup:SecurityGroup"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
LB = "aws:lb/loadBalancer:LoadBalancer"


def run(rule_id: str, resource: ResourceView, peers=(), stack: str = "dev") -> list[Violation]:
    return check_resource(resource, stack, peers=[resource, *peers], rules=[rule_by_id(rule_id)])


# --- RDS TLS through the parameter group -------------------------------------------------------


def _rds_with_group(group_inputs: dict) -> tuple[ResourceView, ResourceView]:
    group = view(PARAMS, "db-params", group_inputs)
    instance_inputs = changed(cases.good_rds_instance(), "parameterGroupName", ...)
    instance_inputs["parameterGroupName"] = "db-params-1234567"
    instance = view(RDS, "db", instance_inputs, deps={"parameterGroupName": (group.urn,)})
    return instance, group


def test_rds_ssl_forced_through_referenced_group() -> None:
    instance, group = _rds_with_group(cases.good_parameter_group())
    assert run("rds-ssl-forced", instance, [group]) == []


def test_rds_ssl_not_forced_when_group_lacks_force_ssl() -> None:
    weak = cases.good_parameter_group()
    weak["parameters"] = [p for p in weak["parameters"] if p["name"] != "rds.force_ssl"]
    instance, group = _rds_with_group(weak)
    [found] = run("rds-ssl-forced", instance, [group])
    assert found.message.startswith("parameter group db-params does not set rds.force_ssl=1")


def test_rds_ssl_force_ssl_zero_is_a_violation() -> None:
    weak = cases.good_parameter_group()
    weak["parameters"][1]["value"] = "0"
    instance, group = _rds_with_group(weak)
    assert len(run("rds-ssl-forced", instance, [group])) == 1


def test_rds_ssl_found_by_physical_name_without_dependency() -> None:
    group = view(PARAMS, "db-params", cases.good_parameter_group())
    instance = view(RDS, "db", cases.good_rds_instance())
    assert run("rds-ssl-forced", instance, [group]) == []


def test_rds_default_parameter_group_does_not_force_tls() -> None:
    instance = view(RDS, "db", changed(cases.good_rds_instance(), "parameterGroupName", ...))
    [found] = run("rds-ssl-forced", instance)
    assert "the default group does not force TLS" in found.message


# --- S3: encryption, public access block, TLS-only policy ---------------------------------------


def _bucket_stack(
    sse_rules: list | None = None, flags: dict | None = None, policy: str | None = None
) -> tuple[ResourceView, list[ResourceView]]:
    bucket = view(BUCKET, "audit", {"bucket": "plat-dev-audit", "tags": dict(TAGS)})
    on_bucket = {"bucket": (bucket.urn,)}
    default_rules = [
        {
            "applyServerSideEncryptionByDefault": {
                "sseAlgorithm": "aws:kms",
                "kmsMasterKeyId": KEY_ARN,
            }
        }
    ]
    all_on = {
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    peers = [
        view(SSE, "audit-sse", {"bucket": "b", "rules": sse_rules or default_rules}, on_bucket),
        view(PAB, "audit-pab", {"bucket": "b", **(flags or all_on)}, on_bucket),
        view(
            BUCKET_POLICY,
            "audit-policy",
            {"bucket": "b", "policy": policy or cases.tls_only_bucket_policy()},
            on_bucket,
        ),
    ]
    return bucket, peers


def test_bucket_with_all_companions_passes_every_bucket_rule() -> None:
    bucket, peers = _bucket_stack()
    for rule_id in ("s3-bucket-encrypted", "s3-public-access-blocked", "s3-tls-only"):
        assert run(rule_id, bucket, peers) == [], rule_id
    assert run("s3-sse-config-customer-key", peers[0]) == []
    assert run("s3-public-access-block-complete", peers[1]) == []


def test_bucket_alone_fails_every_bucket_rule() -> None:
    bucket, _ = _bucket_stack()
    assert (
        "no BucketServerSideEncryptionConfiguration"
        in run("s3-bucket-encrypted", bucket)[0].message
    )
    assert "no BucketPublicAccessBlock" in run("s3-public-access-blocked", bucket)[0].message
    assert "plain-HTTP requests are accepted" in run("s3-tls-only", bucket)[0].message


def test_bucket_with_sse_s3_instead_of_customer_key() -> None:
    bucket, peers = _bucket_stack(
        sse_rules=[{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]
    )
    assert len(run("s3-bucket-encrypted", bucket, peers)) == 1
    [found] = run("s3-sse-config-customer-key", peers[0])
    assert "not SSE-KMS with a customer key" in found.message


def test_public_access_block_with_a_flag_off() -> None:
    flags = {
        "blockPublicAcls": True,
        "blockPublicPolicy": False,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    bucket, peers = _bucket_stack(flags=flags)
    assert len(run("s3-public-access-blocked", bucket, peers)) == 1
    [found] = run("s3-public-access-block-complete", peers[1])
    assert found.message == "public access block leaves blockPublicPolicy off: set all four to true"


def test_bucket_policy_without_secure_transport_deny() -> None:
    allow_only = policy_document(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::1:role/r"},
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::audit/*",
        }
    )
    bucket, peers = _bucket_stack(policy=allow_only)
    assert len(run("s3-tls-only", bucket, peers)) == 1


# --- Security-group ingress --------------------------------------------------------------------


def _sg(ingress: list[dict]) -> ResourceView:
    return view(SG, "sg", {"vpcId": "vpc-1", "ingress": ingress, "tags": dict(TAGS)})


def _lb(group: ResourceView, internal: bool) -> ResourceView:
    return view(
        LB,
        "lb",
        {"internal": internal, "securityGroups": ["sg-1"]},
        {"securityGroups": (group.urn,)},
    )


def test_inline_ingress_from_peer_group_passes() -> None:
    group = _sg(
        [{"protocol": "tcp", "fromPort": 5432.0, "toPort": 5432.0, "securityGroups": ["sg-nodes"]}]
    )
    assert run("no-open-ingress", group) == []


def test_inline_ingress_open_to_world_on_ssh_fails() -> None:
    group = _sg(
        [{"protocol": "tcp", "fromPort": 22.0, "toPort": 22.0, "cidrBlocks": ["0.0.0.0/0"]}]
    )
    [found] = run("no-open-ingress", group)
    assert found.message.startswith("ingress[0]: ingress from 0.0.0.0/0 on port 22")


def test_default_security_group_may_not_open_ingress_either() -> None:
    default_type = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
    locked = view(default_type, "default-sg", {"vpcId": "vpc-1", "ingress": [], "egress": []})
    assert run("no-open-ingress", locked) == []
    opened = view(
        default_type,
        "default-sg",
        {
            "vpcId": "vpc-1",
            "ingress": [
                {"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "cidrBlocks": ["0.0.0.0/0"]}
            ],
        },
    )
    [found] = run("no-open-ingress", opened)
    assert "from 0.0.0.0/0 on all ports" in found.message


def test_inline_ingress_open_ipv6_all_protocols_fails() -> None:
    group = _sg([{"protocol": "-1", "fromPort": 0.0, "toPort": 0.0, "ipv6CidrBlocks": ["::/0"]}])
    [found] = run("no-open-ingress", group)
    assert "from ::/0 on all ports" in found.message


def test_https_open_to_world_allowed_only_on_a_public_load_balancer() -> None:
    group = _sg(
        [{"protocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrBlocks": ["0.0.0.0/0"]}]
    )
    assert run("no-open-ingress", group, [_lb(group, internal=False)]) == []
    assert len(run("no-open-ingress", group, [_lb(group, internal=True)])) == 1
    assert len(run("no-open-ingress", group)) == 1


def test_public_load_balancer_group_still_may_not_open_other_ports() -> None:
    group = _sg(
        [{"protocol": "tcp", "fromPort": 80.0, "toPort": 443.0, "cidrBlocks": ["0.0.0.0/0"]}]
    )
    [found] = run("no-open-ingress", group, [_lb(group, internal=False)])
    assert "ports 80-443" in found.message


def test_standalone_ingress_rule_resources() -> None:
    group = _sg([])
    on_group = {"securityGroupId": (group.urn,)}
    open_https = {
        "securityGroupId": "sg-1",
        "cidrIpv4": "0.0.0.0/0",
        "fromPort": 443.0,
        "toPort": 443.0,
        "ipProtocol": "tcp",
    }
    rule = view(SG_INGRESS, "https", open_https, on_group)
    assert run("no-open-ingress", rule, [group, _lb(group, internal=False)]) == []
    assert len(run("no-open-ingress", rule, [group])) == 1
    private = view(SG_INGRESS, "pg", {**open_https, "cidrIpv4": "10.0.0.0/16"}, on_group)
    assert run("no-open-ingress", private, [group]) == []

    legacy = {
        "type": "ingress",
        "securityGroupId": "sg-1",
        "protocol": "tcp",
        "fromPort": 9092.0,
        "toPort": 9092.0,
        "cidrBlocks": ["10.0.0.0/8", "0.0.0.0/0"],
    }
    [found] = run("no-open-ingress", view(SG_RULE, "kafka", legacy, on_group), [group])
    assert "ingress from 0.0.0.0/0 on port 9092" in found.message
    egress = view(SG_RULE, "out", {**legacy, "type": "egress"}, on_group)
    assert run("no-open-ingress", egress, [group]) == []


# --- IAM documents -----------------------------------------------------------------------------


def test_iam_policy_with_named_actions_passes() -> None:
    document = policy_document(
        {"Effect": "Allow", "Action": ["kafka-cluster:Connect", "s3:Get*"], "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    )
    assert (
        run("iam-no-wildcard-actions", view("aws:iam/policy:Policy", "p", {"policy": document}))
        == []
    )


def test_iam_policy_with_star_or_service_star_fails() -> None:
    for action in ("*", "s3:*", ["kms:Decrypt", "kafka-cluster:*"]):
        document = policy_document(
            {"Sid": "Broad", "Effect": "Allow", "Action": action, "Resource": "*"}
        )
        [found] = run(
            "iam-no-wildcard-actions",
            view("aws:iam/rolePolicy:RolePolicy", "p", {"role": "r", "policy": document}),
        )
        assert found.message.startswith("statement Broad allows"), found.message


def test_iam_not_action_and_role_inline_policies() -> None:
    document = policy_document({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    role = view(
        "aws:iam/role:Role",
        "r",
        {
            "assumeRolePolicy": policy_document(
                {
                    "Effect": "Allow",
                    "Action": "sts:AssumeRole",
                    "Principal": {"Service": "ec2.amazonaws.com"},
                }
            ),
            "inlinePolicies": [{"name": "too-broad", "policy": document}],
        },
    )
    [found] = run("iam-no-wildcard-actions", role)
    assert (
        found.message
        == "inline policy too-broad: statement #0 allows NotAction, i.e. every action but a few"
    )
    role_ok = view("aws:iam/role:Role", "r", {"assumeRolePolicy": "{}", "inlinePolicies": []})
    assert run("iam-no-wildcard-actions", role_ok) == []
