# Sourced by the scripts: tool paths and the build settings they share.
export PATH="$HOME/.cargo/bin:$PWD/end2end/node_modules/.bin:$PATH"
export LEPTOS_OUTPUT_NAME=scanpay
