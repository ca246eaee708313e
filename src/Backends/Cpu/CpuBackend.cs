using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Runtime.Loader;
using System.Security.Cryptography;
using System.Text;
using ModelCompiler.IR;
using ModelCompiler.Passes;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Cpu;

/// <summary>A graph compiled for the CPU: the generated source and the assembly built from it.</summary>
/// <param name="Key">hash of the source and of the runtime it was compiled against (the cache key)</param>
public sealed record CpuArtifact(GeneratedModel Generated, byte[] Assembly, string Key, TimeSpan EmitTime, TimeSpan CompileTime, bool FromCache);

/// <summary>
/// The CPU target in one place: graph → C# (<see cref="CSharpEmitter"/>) → assembly (<see cref="RoslynCompiler"/>)
/// → a loaded <see cref="ICompiledModel"/>. Assemblies are cached in memory for the process, and on disk in a
/// folder when one is given, keyed by a hash of the source and the runtime assembly's identity.
/// </summary>
public static class CpuBackend
{
    /// <summary>The passes the CPU target runs before code generation (cleanup, then concat-linears, fuse-norm-linear, fuse-linear-epilogue).</summary>
    public static IReadOnlyList<string> Pipeline => PassManager.FusionPipeline;

    /// <summary>The passes for the KV-cached graph that <see cref="CompiledCachedDecoder"/> drives.</summary>
    public static IReadOnlyList<string> CachedPipeline { get; } = [.. PassManager.FusionPipeline, "kv-cache"];

    /// <summary>The passes for the paged-KV-cache graph that <see cref="Runtime.Paged.PagedEngine"/> drives.</summary>
    public static IReadOnlyList<string> PagedPipeline { get; } = [.. CachedPipeline, "paged-kv-cache", "paged-logit-rows"];

    private static readonly ConcurrentDictionary<string, byte[]> Memory = new(StringComparer.Ordinal);

    public static CpuArtifact Compile(Graph graph, string? cacheDirectory = null)
    {
        var clock = Stopwatch.StartNew();
        var generated = CSharpEmitter.Emit(graph);
        var emitTime = clock.Elapsed;
        var key = CacheKey(generated.Source);
        string? cacheFile = cacheDirectory is null ? null : Path.Combine(cacheDirectory, key + ".dll");
        var compileTime = TimeSpan.Zero;
        bool fromCache = true;
        if (!Memory.TryGetValue(key, out var assembly))
        {
            if (cacheFile is not null && File.Exists(cacheFile))
                assembly = File.ReadAllBytes(cacheFile);
            else
            {
                clock.Restart();
                assembly = RoslynCompiler.Compile(generated.Source, $"{CSharpEmitter.Namespace}.{generated.ClassName}");
                compileTime = clock.Elapsed;
                fromCache = false;
            }
            Memory[key] = assembly;
        }
        if (cacheFile is not null && !File.Exists(cacheFile))
        {
            Directory.CreateDirectory(cacheDirectory!);
            var temp = cacheFile + "." + Guid.NewGuid().ToString("N") + ".tmp";
            File.WriteAllBytes(temp, assembly);
            File.Move(temp, cacheFile, overwrite: true);
        }
        return new CpuArtifact(generated, assembly, key, emitTime, compileTime, fromCache);
    }

    /// <summary>A new instance of the compiled model (weights not loaded), from an assembly in its own load context.</summary>
    public static ICompiledModel Instantiate(CpuArtifact artifact) => Instantiate(artifact.Assembly, artifact.Generated.TypeName);

    public static ICompiledModel Instantiate(byte[] assembly, string typeName)
    {
        var context = new AssemblyLoadContext($"mc:{typeName}", isCollectible: true);
        var loaded = context.LoadFromStream(new MemoryStream(assembly));
        var type = loaded.GetType(typeName, throwOnError: true)!;
        return (ICompiledModel)Activator.CreateInstance(type)!;
    }

    /// <summary>SHA-256 of the source, the runtime assembly's module version id and the Roslyn version, in hex.</summary>
    public static string CacheKey(string source)
    {
        var identity = $"{typeof(ICompiledModel).Assembly.ManifestModule.ModuleVersionId}|{typeof(Microsoft.CodeAnalysis.CSharp.CSharpCompilation).Assembly.GetName().Version}\n";
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity + source)));
    }

    /// <summary>The SHA-256 of some text in hex (the manifest records the source's).</summary>
    public static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    internal static Assembly Runtime => typeof(ICompiledModel).Assembly;
}
