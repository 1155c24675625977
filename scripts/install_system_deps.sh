#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real, only those missing.
set -euo pipefail

declare -A need=(
  [Xvfb]=xvfb [xdotool]=xdotool [import]=imagemagick [xwd]=x11-apps
  [ffmpeg]=ffmpeg [chromium]=chromium [chromedriver]=chromium-driver
  [gst-launch-1.0]=gstreamer1.0-tools [matchbox-window-manager]=matchbox-window-manager
  [mosquitto]=mosquitto [mosquitto_sub]=mosquitto-clients
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# The RTSP test server runs under Debian's own python3, where gi lives.
if ! /usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import GstRtspServer' >/dev/null 2>&1; then
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
            gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
