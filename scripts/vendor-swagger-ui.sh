#!/usr/bin/env bash
# Re-vendors the Swagger UI bundle served offline at /docs from the npm registry,
# checking the tarball against a pinned SHA-256. Usage: ./scripts/vendor-swagger-ui.sh
set -euo pipefail
cd "$(dirname "$0")/.."
version=5.35.0
sha256=1b8e891893404ea4c3558b6a87e2a3e494e7eedba41168c2ece5800a391a6ea6
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "swagger-ui-dist@$version" >/dev/null)
echo "$sha256  $work/swagger-ui-dist-$version.tgz" | sha256sum --check --quiet
tar xzf "$work/swagger-ui-dist-$version.tgz" -C "$work"
for f in swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE; do
  cp "$work/package/$f" "assets/swagger-ui/$f"
done
# Source maps are not vendored; drop the comments that point at them.
sed -i 's|/\*# sourceMappingURL=[^*]*\*/||; s|^//# sourceMappingURL=.*$||' \
  assets/swagger-ui/swagger-ui.css assets/swagger-ui/swagger-ui-bundle.js
echo "swagger-ui-dist $version vendored into assets/swagger-ui"
