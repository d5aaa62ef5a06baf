#include "js_values.h"

namespace jw {

Napi::Error native_error_to_js(Napi::Env env, const NativeError& error) {
  Napi::Error js = Napi::Error::New(env, describe(error));
  js.Set("stage", Napi::String::New(env, stage_name(error.stage)));
  js.Set("code", Napi::String::New(env, errno_name(error.err)));
  js.Set("errno", Napi::Number::New(env, error.err));
  if (!error.path.empty()) js.Set("path", Napi::String::New(env, error.path));
  if (error.index >= 0) js.Set("index", Napi::Number::New(env, error.index));
  return js;
}

Napi::Object fs_ops_outcome_to_js(Napi::Env env, const FsOpsOutcome& outcome) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("completed", Napi::Number::New(env, static_cast<double>(outcome.completed)));
  Napi::Array reads = Napi::Array::New(env, outcome.reads.size());
  for (size_t i = 0; i < outcome.reads.size(); i++) {
    const std::optional<std::string>& text = outcome.reads[i];
    reads.Set(static_cast<uint32_t>(i), text ? Napi::Value(Napi::String::New(env, *text)) : env.Null());
  }
  result.Set("reads", reads);
  if (outcome.error) result.Set("error", native_error_to_js(env, *outcome.error).Value());
  return result;
}

namespace {

Napi::Object event_to_js(Napi::Env env, const OutputEvent& output) {
  Napi::Object js = Napi::Object::New(env);
  js.Set("type", "output");
  js.Set("logBytes", Napi::Number::New(env, static_cast<double>(output.log_bytes)));
  return js;
}

Napi::Object event_to_js(Napi::Env env, const ExitEvent& exit) {
  const ExitStatus& s = exit.status;
  Napi::Object js = Napi::Object::New(env);
  js.Set("type", "exit");
  js.Set("code", s.signal == 0 ? Napi::Value(Napi::Number::New(env, s.code)) : env.Null());
  js.Set("signal", s.signal != 0 ? Napi::Value(Napi::Number::New(env, s.signal)) : env.Null());
  js.Set("coreDumped", Napi::Boolean::New(env, s.core_dumped));
  js.Set("userCpuMicros", Napi::Number::New(env, static_cast<double>(s.user_cpu_us)));
  js.Set("systemCpuMicros", Napi::Number::New(env, static_cast<double>(s.system_cpu_us)));
  js.Set("exitedAtMs", Napi::Number::New(env, static_cast<double>(s.time_ns) / 1e6));
  js.Set("logBytes", Napi::Number::New(env, static_cast<double>(s.log_bytes)));
  if (exit.exit_ops) js.Set("exitOps", fs_ops_outcome_to_js(env, *exit.exit_ops));
  return js;
}

Napi::Object event_to_js(Napi::Env env, const CloseEvent& close) {
  Napi::Object js = Napi::Object::New(env);
  js.Set("type", "close");
  js.Set("logBytes", Napi::Number::New(env, static_cast<double>(close.log_bytes)));
  js.Set("droppedBytes", Napi::Number::New(env, static_cast<double>(close.dropped_bytes)));
  js.Set("truncated", Napi::Boolean::New(env, close.truncated));
  js.Set("writeError", close.write_error != 0 ? Napi::Value(Napi::String::New(env, errno_name(close.write_error))) : env.Null());
  return js;
}

}  // namespace

void JsListener::call(const JobEvent& event) {
  Napi::Env env = function_.Env();
  Napi::HandleScope scope(env);
  try {
    Napi::Object js = std::visit([&](const auto& detail) { return event_to_js(env, detail); }, event);
    function_.Call({js});
  } catch (const Napi::Error& error) {
    napi_fatal_exception(env, error.Value());  // an uncaught exception, like any event listener's
  }
}

}  // namespace jw
