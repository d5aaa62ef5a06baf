{
  # For node-gyp users (`npx node-gyp rebuild`); CMakeLists.txt is the primary build (cmake-js).
  # Keep the sources and flags of the two in step.
  "targets": [
    {
      "target_name": "jobworker",
      "sources": [
        "native/addon.cc",
        "native/fs_ops.cc",
        "native/js_values.cc",
        "native/native_error.cc",
        "native/crc32.cc",
        "native/log_writer.cc",
        "native/reactor.cc",
        "native/spawn.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "_GNU_SOURCE", "_FORTIFY_SOURCE=2"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror=return-type", "-fexceptions",
                    "-fstack-protector-strong", "-fvisibility=hidden"],
      "ldflags": ["-Wl,-z,relro,-z,now", "-Wl,-z,noexecstack"],
      "libraries": ["-lpthread"]
    }
  ]
}
