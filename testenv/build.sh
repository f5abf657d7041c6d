#!/usr/bin/env bash
# Placeholder until issue 3 lands: nothing to build yet.
exit 0
