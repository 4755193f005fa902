# Shell helpers shared by the benchmark runners (run.sh, signal.sh, rtc.sh); sourced, not run.

# Sets the array PRIO to the command prefix that runs a measured process with real-time
# priority: on a shared machine other processes would delay every wakeup by a time slice, and
# SCHED_FIFO (the kernel still keeps 5% of each CPU for everything else) avoids that. Falls
# back to nice -20, then to nothing. $1: 1 to ask for it, 0 for ordinary priority.
pick_priority() {
    PRIO=()
    if [ "$1" = 1 ]; then
        if chrt -f 1 true 2>/dev/null; then
            PRIO=(chrt -f 1)
        elif nice -n -20 true 2>/dev/null; then
            PRIO=(nice -n -20)
        fi
    fi
}

field() { # line key: the value of key=value in a result line
    echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

median() { # numbers...; "nan" values are left out, and none at all gives "nan"
    printf '%s\n' "$@" | grep -v '^nan$' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2] + a[NR/2+1]) / 2}'
}

commas() { # number: rounded, with thousands separators; "nan" gives "-"
    [ "$1" = nan ] && { echo "-"; return; }
    printf '%.0f' "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'
}
