{
  # For node-gyp users (`npx node-gyp rebuild`); CMakeLists.txt is the primary build (cmake-js).
  # Keep the sources and flags of the two in step.
  "targets": [
    {
      "target_name": "jobworker",
      "sources": [
        "native/addon.cc",
        "native/fs_ops.cc",
        "native/isolation.cc",
        "native/js_values.cc",
        "native/native_error.cc",
        "native/crc32.cc",
        "native/log_writer.cc",
        "native/reactor.cc",
        "native/spawn.cc",
        "native/spawn_deadline.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE", "_FORTIFY_SOURCE=2"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror=return-type", "-fexceptions",
                    "-fstack-protector-strong", "-fvisibility=hidden"],
      "ldflags": ["-Wl,-z,relro,-z,now", "-Wl,-z,noexecstack"],
      "libraries": ["-lpthread", "-ldl"]
    },
    {
      # PID 1 of a job's PID namespace (native/init.c), found by the addon beside jobworker.node.
      # Static, and on x86-64 without a C library (see CMakeLists.txt).
      "target_name": "jobworker-init",
      "type": "executable",
      "sources": ["native/init.c"],
      "cflags!": ["-fPIC", "-fno-exceptions"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-fno-pie"],
      "conditions": [
        ["target_arch==\"x64\"", {
          "defines": ["JW_INIT_NOLIBC"],
          "cflags": ["-ffreestanding", "-fno-stack-protector", "-fno-asynchronous-unwind-tables"],
          "ldflags": ["-static", "-nostdlib", "-no-pie", "-Wl,--build-id=none"]
        }, {
          "ldflags": ["-static", "-no-pie"]
        }]
      ]
    }
  ]
}
