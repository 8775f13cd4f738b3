#!/bin/sh
# Starts indiserver with $INDI_DRIVERS (one argument per driver: split on purpose).
# When the sky simulator is among them and OBSY_SKYSIM_CONFIG is not set, its settings are
# written first with the site of OBSY's configuration (/etc/obsy/obsy.yaml, or $OBSY_CONFIG),
# so the simulated sky is the one over the site OBSY's services judge. A configuration that
# cannot be read is reported and the simulator renders its default site: indiserver, which
# may serve real hardware too, starts whatever happens. INDISERVER names the server's
# executable (indiserver; the tests run it under another process name, see tests/support/indiserver.py).
set -u
case " $INDI_DRIVERS " in
    *" indi_obsy_allsky "* | *" indi_obsy_camera "*)
        obsy_config=${OBSY_CONFIG:-/etc/obsy/obsy.yaml}
        if [ -z "${OBSY_SKYSIM_CONFIG:-}" ] && [ -f "$obsy_config" ]; then
            settings="$HOME/skysim.yaml"
            if obsy-skysim settings "$settings" --site-of "$obsy_config"; then
                export OBSY_SKYSIM_CONFIG="$settings"
            else
                echo "start-indiserver: the sky simulator renders its default site" >&2
            fi
        fi
        ;;
esac
# shellcheck disable=SC2086
exec "${INDISERVER:-indiserver}" -p 7624 $INDI_SERVER_ARGS $INDI_DRIVERS
