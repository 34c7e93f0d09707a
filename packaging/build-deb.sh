#!/usr/bin/env bash
# Builds the Debian package with dpkg-deb from a tree laid out here (no cargo-deb: that would be
# a few minutes of compiling on every fresh machine; dpkg-deb and dpkg-shlibdeps come with
# Debian's dpkg and dpkg-dev). Run from anywhere; the last line printed is the package's path,
# target/packaging/appmixer-auth_VERSION_ARCH.deb.
#
# What it installs: /usr/bin/appmixer-auth; /etc/appmixer-auth/appmixer.toml (a conffile: the
# committed appmixer.toml with the database in /var/lib/appmixer-auth); the systemd unit, made
# from packaging/appmixer-auth.service for the package's own system user. postinst creates that
# user and /var/lib/appmixer-auth (0700); postrm --purge removes the directory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/packaging"
cd "$root"

if ! command -v dpkg-shlibdeps >/dev/null; then
    echo "== installing dpkg-dev (dpkg-shlibdeps)" >&2
    apt-get install -y -qq dpkg-dev >&2
fi

cargo build --release --locked --bin appmixer-auth >&2
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
arch="$(dpkg --print-architecture)"
deb="$out/appmixer-auth_${version}_${arch}.deb"

# Laid out as debian/PACKAGE, where dpkg-shlibdeps looks for a package's files.
work="$out/deb"
stage="$work/debian/appmixer-auth"
rm -rf "$work" "$deb"
install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/appmixer-auth" \
    "$stage/usr/lib/systemd/system" "$stage/usr/share/doc/appmixer-auth"

install -m 0755 target/release/appmixer-auth "$stage/usr/bin/appmixer-auth"
install -m 0644 packaging/deb/copyright "$stage/usr/share/doc/appmixer-auth/copyright"

# The settings file. 0640 from the start (postinst gives it the service's group): it may come to
# hold a token secret and passwords.
conf="$stage/etc/appmixer-auth/appmixer.toml"
{
    echo "# Installed by the appmixer-auth Debian package, and kept as you change it (a conffile)."
    echo "# The service reads it (its unit sets APPMIXER_CONFIG); after a change:"
    echo "# systemctl restart appmixer-auth. The command line reads it with"
    echo "# appmixer-auth --config /etc/appmixer-auth/appmixer.toml ..."
    echo "#"
    sed 's#^path = "appmixer.db"$#path = "/var/lib/appmixer-auth/appmixer.db"#' appmixer.toml
} > "$conf"
chmod 0640 "$conf"
grep -qx 'path = "/var/lib/appmixer-auth/appmixer.db"' "$conf" \
    || { echo "build-deb.sh: appmixer.toml has no 'path = \"appmixer.db\"' line to point at /var/lib" >&2; exit 1; }

# The unit: the binary in /usr/bin, the package's user instead of a dynamic one, and the
# database path left to the settings file.
unit="$stage/usr/lib/systemd/system/appmixer-auth.service"
{
    echo "# appmixer-auth's systemd unit as the Debian package installs it (packaging/build-deb.sh"
    echo "# makes it from packaging/appmixer-auth.service). Settings: /etc/appmixer-auth/appmixer.toml."
    sed -e '1,/^\[Unit\]$/{/^\[Unit\]$/!d}' \
        -e 's#/usr/local/bin/appmixer-auth#/usr/bin/appmixer-auth#g' \
        -e 's#^\# A throw-away system user; .*#\# The package'"'"'s system user (postinst creates it); the database lives in /var/lib/appmixer-auth.#' \
        -e 's#^DynamicUser=yes$#User=appmixer-auth\nGroup=appmixer-auth#' \
        -e '/^Environment=APPMIXER_DATABASE__PATH=/d' \
        packaging/appmixer-auth.service
} > "$unit"
chmod 0644 "$unit"
if grep -q -e /usr/local -e DynamicUser -e APPMIXER_DATABASE__PATH "$unit" || ! grep -qx 'User=appmixer-auth' "$unit"; then
    echo "build-deb.sh: packaging/appmixer-auth.service changed; adapt the sed that makes $unit" >&2
    exit 1
fi

install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"
echo /etc/appmixer-auth/appmixer.toml > "$stage/DEBIAN/conffiles"
chmod 0644 "$stage/DEBIAN/conffiles"
(cd "$stage" && find usr -type f -exec md5sum {} + | sort -k 2 > DEBIAN/md5sums)
chmod 0644 "$stage/DEBIAN/md5sums"

# The shared libraries' packages and versions (libc6 >= the newest glibc symbol the binary
# uses), worked out by Debian's own tool from the libraries' symbols files.
printf 'Source: appmixer-auth\n\nPackage: appmixer-auth\nArchitecture: any\n' > "$work/debian/control"
shlibs="$(cd "$work" && dpkg-shlibdeps -O debian/appmixer-auth/usr/bin/appmixer-auth)"
case "$shlibs" in
    shlibs:Depends=libc6*) ;;
    *) echo "build-deb.sh: dpkg-shlibdeps said '$shlibs'" >&2; exit 1 ;;
esac
depends="adduser, ${shlibs#shlibs:Depends=}"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: appmixer-auth
Version: $version
Architecture: $arch
Maintainer: appmixer-auth maintainers <maintainers@users.noreply.r-seed-d25d7c71.example>
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Section: net
Priority: optional
Description: local stand-in for the Appmixer user and authentication API
 One binary that speaks the user and authentication API of the Appmixer
 integration platform (sign in, create users, read the current user), with its
 users in one SQLite file. Real Appmixer clients work against it unchanged.
 .
 The appmixer-auth service runs as the appmixer-auth system user, with its
 settings in /etc/appmixer-auth/appmixer.toml and its database in
 /var/lib/appmixer-auth.
CONTROL

dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
