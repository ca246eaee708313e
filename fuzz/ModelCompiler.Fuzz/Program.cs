using ModelCompiler.Fuzz;
using SharpFuzz;

// One target per process: `ModelCompiler.Fuzz <target>` under afl-fuzz (persistent mode), or
// `ModelCompiler.Fuzz <target> <file>...` to replay inputs once (crash triage, corpus checks).
if (args.Length == 0 || !FuzzTargets.All.TryGetValue(args[0], out var target))
{
    Console.Error.WriteLine($"usage: ModelCompiler.Fuzz <{string.Join("|", FuzzTargets.All.Keys)}> [input files to replay]");
    return 2;
}

if (args.Length > 1)
{
    int failures = 0;
    foreach (var file in args.Skip(1))
    {
        // Replay reports what happened to each input; only an exception other than McException is a failure.
        try { target(File.ReadAllBytes(file)); Console.WriteLine($"{file}: accepted"); }
        catch (ModelCompiler.Runtime.McException e) { Console.WriteLine($"{file}: rejected: {e.Message.Split('\n')[0]}"); }
        catch (Exception e) { failures++; Console.Error.WriteLine($"{file}: CRASH {e}"); }
    }
    return failures == 0 ? 0 : 1;
}

// Out of process: a stack overflow or other fatal error in the reader is reported as a crash instead of
// killing the fork server.
Fuzzer.OutOfProcess.Run(stream =>
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    try { target(buffer.ToArray()); }
    catch (ModelCompiler.Runtime.McException) { } // the documented rejection; anything else escapes as a crash
});
return 0;
