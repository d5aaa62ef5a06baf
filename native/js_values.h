// The one place where the native core's results become JavaScript values: errors (NativeError),
// filesystem-op outcomes and a job's events. Shapes declared for TypeScript in src/native/binding.ts:
// keep the two in step. JS thread only.
#pragma once

#include <napi.h>

#include "fs_ops.h"
#include "job_events.h"
#include "native_error.h"

namespace jw {

// An Error whose message is describe(error), with the fields { stage, code, errno, path?, index? }.
Napi::Error native_error_to_js(Napi::Env env, const NativeError& error);

// { completed, reads: (string|null)[], error?: (see native_error_to_js) }
Napi::Object fs_ops_outcome_to_js(Napi::Env env, const FsOpsOutcome& outcome);

// A job's listener, called with one object per event: { type: 'output' | 'exit' | 'close', ... }.
class JsListener {
 public:
  explicit JsListener(Napi::Function function) : function_(Napi::Persistent(function)) {}

  // An exception thrown by the listener is reported as uncaught, as any event listener's would be.
  void call(const JobEvent& event);

 private:
  Napi::FunctionReference function_;
};

}  // namespace jw
