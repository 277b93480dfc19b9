#!/usr/bin/env bash
# LocalStack init hook (runs once LocalStack is ready): the S3 bucket the audit app archives to
# when the apps run from compose. The Pulumi `localstack` stack declares its own bucket
# (plat-localstack-audit-archive); this one is only for the compose-run apps, so the two never
# collide.
set -euo pipefail
bucket="${AUDIT_ARCHIVE_BUCKET:-local-audit-archive}"
if awslocal s3api head-bucket --bucket "$bucket" 2>/dev/null; then
  echo "init: bucket $bucket already exists"
else
  awslocal s3api create-bucket --bucket "$bucket"
  awslocal s3api put-bucket-versioning --bucket "$bucket" \
    --versioning-configuration Status=Enabled
  awslocal s3api put-public-access-block --bucket "$bucket" \
    --public-access-block-configuration \
    BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true
  echo "init: created bucket $bucket"
fi
