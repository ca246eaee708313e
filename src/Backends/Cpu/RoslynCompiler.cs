using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cpu;

/// <summary>
/// Compiles generated C# in-process with Roslyn (Release optimisation, deterministic output) against the
/// running platform's assemblies and ModelCompiler.Runtime. Generated code that does not compile is a bug in
/// the emitter: the error lists Roslyn's diagnostics.
/// </summary>
public static class RoslynCompiler
{
    private static readonly Lazy<ImmutableArray<MetadataReference>> References = new(LoadReferences);

    /// <summary>The assembly bytes (a DLL) of <paramref name="source"/>.</summary>
    public static byte[] Compile(string source, string assemblyName)
    {
        var tree = CSharpSyntaxTree.ParseText(source, new CSharpParseOptions(LanguageVersion.Latest), path: assemblyName + ".cs");
        var options = new CSharpCompilationOptions(
            OutputKind.DynamicallyLinkedLibrary,
            optimizationLevel: OptimizationLevel.Release,
            deterministic: true,
            nullableContextOptions: NullableContextOptions.Disable,
            concurrentBuild: false);
        var compilation = CSharpCompilation.Create(assemblyName, [tree], References.Value, options);
        using var stream = new MemoryStream();
        var result = compilation.Emit(stream);
        if (!result.Success)
        {
            var errors = result.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
            // The first error on the first line (what mc prints of an internal error), all of them below.
            throw new InvalidOperationException(
                $"the generated C# for {assemblyName} does not compile: {errors[0]}{(errors.Count > 1 ? $" (and {errors.Count - 1} more)" : "")}\n  " +
                string.Join("\n  ", errors.Take(50).Select(d => d.ToString())));
        }
        return stream.ToArray();
    }

    /// <summary>The trusted platform assemblies (the framework, and the app's own dependencies) plus ModelCompiler.Runtime.</summary>
    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        var paths = ((AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES") as string) ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .ToList();
        var runtime = typeof(ICompiledModel).Assembly.Location;
        if (!string.IsNullOrEmpty(runtime) && !paths.Any(p => string.Equals(Path.GetFileName(p), Path.GetFileName(runtime), StringComparison.OrdinalIgnoreCase)))
            paths.Add(runtime);
        if (paths.Count == 0) throw new InvalidOperationException("no platform assemblies to compile against (TRUSTED_PLATFORM_ASSEMBLIES is empty)");
        return paths
            .Where(p => p.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) && File.Exists(p))
            .Select(p => (MetadataReference)MetadataReference.CreateFromFile(p))
            .ToImmutableArray();
    }
}
