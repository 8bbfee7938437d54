#!/bin/sh
# Build a busybox root file system from the host's busybox-static and import it
# as busybox:latest (no network needed).  Usage:
#   contrib/mkimage-busybox.sh [IMAGE_NAME]        (default busybox:latest)
# Environment: DOCKYARD_HOST / DOCKER_HOST as for the CLI; DOCKYARD (the client
# to use, default: dockyard).
set -eu
name=${1:-busybox:latest}
client=${DOCKYARD:-dockyard}
busybox=$(command -v busybox || true)
[ -n "$busybox" ] || { echo "busybox not found: apt-get install busybox-static" >&2; exit 1; }
if ldd "$busybox" >/dev/null 2>&1; then
    echo "$busybox is dynamically linked; install busybox-static" >&2; exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/etc" "$root/root" \
         "$root/tmp" "$root/var" "$root/home" "$root/dev" "$root/proc" "$root/sys"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list-full); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -sf /bin/busybox "$root/$applet"
done
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
nogroup:x:65534:
GROUP
echo "127.0.0.1 localhost" > "$root/etc/hosts"
tar --numeric-owner -C "$root" -cf - . | "$client" import - "$name"
