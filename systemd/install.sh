#!/bin/bash
# Install, upgrade or remove the Antrean appliance on Raspberry Pi OS Bookworm (Lite).
#
# Idempotent: every file is compared before it is written and every reload runs only when
# something it covers changed, so a second run prints "no changes" and touches nothing.
# docs/install.md is the step-by-step guide; `install.sh --help` lists the options.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: sudo systemd/install.sh [--dry-run] [--root DIR] [--uninstall]

Installs the Antrean appliance from the source tree this script sits in:
apt packages, a virtual environment in /opt/antrean/venv (it sees the system's
picamera2), the antrean user, the systemd units and udev rules, and
/etc/antrean/antrean.toml from antrean.example.toml when no config exists yet.

  --dry-run     print the planned actions, one per line, and change nothing
  --root DIR    install into the staging tree DIR instead of /; apt, the venv,
                systemctl and udevadm are skipped (printed as "skip ...")
  --uninstall   remove the units, rules and /opt/antrean; keeps /etc/antrean
                (config, token), /var/lib/antrean (database) and the user
  -h, --help    show this help
EOF
}

DRY_RUN=0
UNINSTALL=0
ROOT=/
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --uninstall) UNINSTALL=1 ;;
        --root)
            [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }
            ROOT=$2
            shift
            ;;
        --root=*) ROOT=${1#--root=} ;;
        -h | --help) usage; exit 0 ;;
        *) echo "install.sh: unknown option '$1'; see install.sh --help" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "install.sh: $*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UNIT_SRC="$SRC/systemd"
[ -f "$SRC/pyproject.toml" ] && [ -d "$UNIT_SRC" ] \
    || die "$SRC is not the Antrean source tree (no pyproject.toml); run the script from it"

if [ "$ROOT" != / ]; then
    [ -d "$ROOT" ] || die "--root $ROOT is not a directory; create it first"
    ROOT=$(cd "$ROOT" && pwd)
    STAGED=1
else
    ROOT=
    STAGED=0
fi
if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "must run as root: sudo $0 (--dry-run works without root)"
fi

VENV=/opt/antrean/venv
STAMP=$VENV/antrean-source.sha256
SERVICES=(antrean-scanner.service antrean-display.service antrean-sync.service
    antrean-printer.service)
UNITS=("${SERVICES[@]}" antrean.target)
RULES=(99-antrean-scanner.rules 99-antrean-display.rules)
SYSUSERS_CONF=/etc/sysusers.d/antrean.conf
TMPFILES_CONF=/etc/tmpfiles.d/antrean.conf
CONFIG=/etc/antrean/antrean.toml
# python3-pygame: the distribution's pygame, built on the system's SDL, which has the kmsdrm
# video driver; the pygame wheels on PyPI bundle an SDL without it (a dark screen on a Pi).
# The venv sees it through --system-site-packages, so pip keeps it instead of a wheel.
# SDL's kmsdrm draws through GBM and EGL: without Mesa's DRI drivers (libgl1-mesa-dri, only
# a Recommends of the SDL packages) it fails with "EGL not initialized" and the screen stays
# dark; libgles2 is the GL ES library its renderer loads.
APT_PACKAGES=(python3 python3-venv python3-pygame libsdl2-2.0-0 libsdl2-ttf-2.0-0
    libsdl2-image-2.0-0 libsdl2-mixer-2.0-0 libgl1-mesa-dri libegl1 libgles2 libzbar0
    espeak-ng alsa-utils fonts-dejavu-core fonts-noto-core fonts-droid-fallback)
# Camera, GPIO and keyboard-scanner support, and numpy's BLAS for 32-bit wheels: skipped
# with a note where the archive lacks them (python3-picamera2 is Raspberry Pi OS only).
APT_OPTIONAL=(python3-picamera2 python3-lgpio python3-evdev libopenblas0)

CHANGES=0
UNITS_CHANGED=0
RULES_CHANGED=0
CODE_CHANGED=0

# The path of an absolute target path inside the tree being installed into.
t() { printf '%s%s' "$ROOT" "$1"; }

# change DESCRIPTION COMMAND...: print the action and run it (a dry run only prints it).
change() {
    local what=$1
    shift
    say "$what"
    CHANGES=$((CHANGES + 1))
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

# host DESCRIPTION COMMAND...: a command that acts on the running system, not on files;
# under --root it is printed as skipped, because it would act on this machine instead.
host() {
    local what=$1
    shift
    if [ "$STAGED" = 1 ]; then
        say "skip $what (--root)"
    else
        say "run $what"
        if [ "$DRY_RUN" = 0 ]; then "$@"; fi
    fi
}

# same_file SRC DEST MODE: true when DEST already has SRC's bytes and MODE.
same_file() {
    [ -f "$2" ] && cmp -s "$1" "$2" && [ "$(stat -c %a "$2")" = "${3#0}" ]
}

# put SRC TARGET MODE: install SRC as TARGET (absolute, inside the tree) when it differs.
# Prints install/update/keep; returns 0 only when the file changed (or would change).
put() {
    local src=$1 target=$2 mode=$3 dest
    dest=$(t "$target")
    if same_file "$src" "$dest" "$mode"; then
        say "keep $target"
        return 1
    fi
    local verb=install
    [ -e "$dest" ] && verb=update
    change "$verb $target" install -D -m "$mode" "$src" "$dest"
    return 0
}

# drop TARGET: remove a file or tree when it exists.
drop() {
    local dest
    dest=$(t "$1")
    if [ -e "$dest" ] || [ -L "$dest" ]; then
        change "remove $1" rm -rf -- "$dest"
        return 0
    fi
    return 1
}

source_fingerprint() {
    (cd "$SRC" && find pyproject.toml appliance drivers display sync -type f \
        ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z \
        | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# apt_has PACKAGE: true when this system's archive offers PACKAGE. (Not `| grep -q`: under
# pipefail grep's early exit kills apt-cache with SIGPIPE and the answer was always "no".)
apt_has() {
    local policy
    policy=$(apt-cache policy "$1" 2>/dev/null) || return 1
    [[ $policy =~ Candidate:\ [^\(] ]]
}

install_packages() {
    if [ "$STAGED" = 1 ]; then
        say "skip apt-get install (--root)"
        return
    fi
    if ! grep -qs '^VERSION_CODENAME=bookworm' /etc/os-release; then
        say "warn: this is not Debian/Raspberry Pi OS bookworm; package names may differ"
    fi
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}" "${APT_OPTIONAL[@]}"; do
        if ! dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii'; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} = 0 ]; then
        say "keep apt packages (all installed)"
        return
    fi
    host "apt-get update" apt-get update -qq
    local wanted=()
    for pkg in "${missing[@]}"; do
        if [[ " ${APT_OPTIONAL[*]} " == *" $pkg "* ]] && ! apt_has "$pkg"; then
            say "warn: optional package $pkg is not in this system's archive; skipped"
            continue
        fi
        wanted+=("$pkg")
    done
    [ ${#wanted[@]} = 0 ] && return
    CHANGES=$((CHANGES + 1))
    host "apt-get install -y --no-install-recommends ${wanted[*]}" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${wanted[@]}"
}

install_user() {
    local user_exists=0
    if [ "$STAGED" = 1 ]; then
        grep -qs '^antrean:' "$(t /etc/passwd)" && user_exists=1
    else
        getent passwd antrean >/dev/null && user_exists=1
    fi
    if put "$UNIT_SRC/antrean.sysusers" "$SYSUSERS_CONF" 0644 || [ "$user_exists" = 0 ]; then
        if [ "$STAGED" = 1 ]; then
            change "run systemd-sysusers --root=$ROOT $SYSUSERS_CONF" \
                systemd-sysusers --root="$ROOT" "$(t "$SYSUSERS_CONF")"
        else
            change "run systemd-sysusers $SYSUSERS_CONF" systemd-sysusers "$SYSUSERS_CONF"
        fi
    fi
}

install_config() {
    local fix_modes=0
    put "$UNIT_SRC/antrean.tmpfiles" "$TMPFILES_CONF" 0644 && fix_modes=1
    if [ -e "$(t "$CONFIG")" ]; then
        say "keep $CONFIG (your config is never overwritten)"
    elif [ -f "$SRC/antrean.example.toml" ]; then
        change "install $CONFIG (from antrean.example.toml; edit it before starting)" \
            install -D -m 0640 "$SRC/antrean.example.toml" "$(t "$CONFIG")"
        fix_modes=1
    else
        say "warn: $SRC/antrean.example.toml is missing; write $CONFIG yourself"
    fi
    [ -d "$(t /etc/antrean)" ] && [ -d "$(t /var/lib/antrean)" ] || fix_modes=1
    if [ "$fix_modes" = 1 ]; then
        if [ "$STAGED" = 1 ]; then
            change "run systemd-tmpfiles --create --root=$ROOT $TMPFILES_CONF" \
                systemd-tmpfiles --create --root="$ROOT" "$(t "$TMPFILES_CONF")"
        else
            change "run systemd-tmpfiles --create $TMPFILES_CONF" \
                systemd-tmpfiles --create "$TMPFILES_CONF"
        fi
    fi
}

write_stamp() { printf '%s\n' "$1" >"$STAMP"; }

# The appliance alone: the root project without extras, never devtools/ (development only).
# setuptools packs whatever an earlier build left in $SRC/build into the new wheel, so a
# module that has since moved out of the appliance (the reference server did) would come
# back with it: build from a clean slate.
pip_install_appliance() {
    rm -rf "$SRC/build"
    "$VENV/bin/pip" install --disable-pip-version-check --quiet --upgrade "$SRC"
}

install_venv() {
    if [ "$STAGED" = 1 ]; then
        say "skip python3 -m venv --system-site-packages $VENV (--root)"
        say "skip pip install $SRC (--root)"
        return
    fi
    if ! grep -qs '^include-system-site-packages = true' "$VENV/pyvenv.cfg" \
        || [ ! -x "$VENV/bin/python" ]; then
        change "run python3 -m venv --clear --system-site-packages $VENV" \
            python3 -m venv --clear --system-site-packages "$VENV"
    fi
    local want have=
    want=$(source_fingerprint)
    [ -f "$STAMP" ] && have=$(cat "$STAMP")
    if [ "$want" = "$have" ] && [ -x "$VENV/bin/antrean" ]; then
        say "keep $VENV (antrean is up to date with $SRC)"
        return
    fi
    CODE_CHANGED=1
    change "run pip install $SRC into $VENV" pip_install_appliance
    change "write $STAMP" write_stamp "$want"
}

install_units() {
    local unit rule
    for unit in "${UNITS[@]}"; do
        put "$UNIT_SRC/$unit" "/etc/systemd/system/$unit" 0644 && UNITS_CHANGED=1
    done
    for rule in "${RULES[@]}"; do
        put "$UNIT_SRC/$rule" "/etc/udev/rules.d/$rule" 0644 && RULES_CHANGED=1
    done
    if [ "$RULES_CHANGED" = 1 ]; then
        host "udevadm control --reload" udevadm control --reload
        host "udevadm trigger --action=change --subsystem-match=tty --subsystem-match=drm" \
            udevadm trigger --action=change --subsystem-match=tty --subsystem-match=drm
    fi
    if [ "$UNITS_CHANGED" = 1 ]; then
        host "systemctl daemon-reload" systemctl daemon-reload
    fi
    if [ "$STAGED" = 1 ]; then
        say "skip systemctl enable antrean.target (--root)"
    elif [ "$DRY_RUN" = 0 ] && systemctl is-enabled --quiet antrean.target 2>/dev/null; then
        say "keep antrean.target enabled"
    elif [ "$DRY_RUN" = 1 ] && [ -L /etc/systemd/system/multi-user.target.wants/antrean.target ]
    then
        say "keep antrean.target enabled"
    else
        CHANGES=$((CHANGES + 1))
        host "systemctl enable antrean.target" systemctl enable --quiet antrean.target
    fi
    if [ "$STAGED" = 0 ] && { [ "$UNITS_CHANGED" = 1 ] || [ "$CODE_CHANGED" = 1 ]; } \
        && systemctl is-active --quiet antrean.target 2>/dev/null; then
        host "systemctl try-restart ${SERVICES[*]}" systemctl try-restart "${SERVICES[@]}"
    fi
}

uninstall() {
    local unit rule removed_units=0 removed_rules=0
    if [ "$STAGED" = 0 ] && [ -e /etc/systemd/system/antrean.target ]; then
        CHANGES=$((CHANGES + 1))
        host "systemctl disable --now antrean.target ${SERVICES[*]}" \
            systemctl disable --now antrean.target "${SERVICES[@]}"
    elif [ "$STAGED" = 1 ]; then
        say "skip systemctl disable --now antrean.target (--root)"
        drop /etc/systemd/system/multi-user.target.wants/antrean.target || true
    fi
    for unit in "${UNITS[@]}"; do
        drop "/etc/systemd/system/$unit" && removed_units=1
    done
    for rule in "${RULES[@]}"; do
        drop "/etc/udev/rules.d/$rule" && removed_rules=1
    done
    drop "$SYSUSERS_CONF" || true
    drop "$TMPFILES_CONF" || true
    drop /opt/antrean || true
    [ "$removed_units" = 1 ] && host "systemctl daemon-reload" systemctl daemon-reload
    [ "$removed_rules" = 1 ] && host "udevadm control --reload" udevadm control --reload
    say "keep /etc/antrean (config and token; remove by hand if you want them gone)"
    say "keep /var/lib/antrean (the database with today's check-ins and unsent events)"
    say "keep user antrean (remove with: userdel antrean)"
}

[ "$DRY_RUN" = 1 ] && say "dry run: nothing is changed"
if [ "$UNINSTALL" = 1 ]; then
    uninstall
else
    install_packages
    install_user
    install_config
    install_venv
    install_units
fi

if [ "$CHANGES" = 0 ]; then
    say "no changes"
elif [ "$DRY_RUN" = 1 ]; then
    say "planned changes: $CHANGES"
else
    say "changes: $CHANGES"
    if [ "$UNINSTALL" = 0 ] && [ "$STAGED" = 0 ]; then
        say "next: edit $CONFIG and put the device token in /etc/antrean/token, then run"
        say "      sudo systemctl start antrean.target && antrean status"
    fi
fi
