using System.Text.Json;
using static ModelCompiler.Runtime.SafetensorsErrors;

namespace ModelCompiler.Runtime;

/// <summary>
/// Weights of a model: a single .safetensors file, or a folder with model.safetensors, or a sharded
/// folder with model.safetensors.index.json ({"weight_map": {tensor: file}}), or (fallback) all
/// *.safetensors in a folder, or a llama.cpp .gguf file (its tensors under Hugging Face names, see
/// <see cref="Gguf.GgufWeights"/>). Tensor names are unique across the whole store.
/// </summary>
public sealed class WeightStore : IDisposable
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    // An index is a small name-to-file map; anything this large is not one.
    private const long MaxIndexLength = 100_000_000;

    private readonly List<ITensorSource> _files;
    private readonly Dictionary<string, ITensorSource> _fileOf;

    /// <summary>The file or folder the store was opened from.</summary>
    public string Path { get; }

    /// <summary>All tensor names, sorted ordinal.</summary>
    public IReadOnlyList<string> Names { get; }

    private WeightStore(string path, List<ITensorSource> files)
        : this(path, files, files.SelectMany(f => f.Tensors.Select(t => KeyValuePair.Create(t.Name, f))).ToDictionary(StringComparer.Ordinal))
    {
    }

    private WeightStore(string path, List<ITensorSource> files, Dictionary<string, ITensorSource> fileOf)
    {
        Path = path;
        _files = files;
        _fileOf = fileOf;
        Names = fileOf.Keys.Order(StringComparer.Ordinal).ToList();
    }

    public static WeightStore Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Gguf.GgufFile.LooksLikeGguf(path)) return new WeightStore(path, [Gguf.GgufWeights.Open(path)]);
        if (File.Exists(path)) return FromFiles(path, [path]);
        if (!Directory.Exists(path)) throw Format(path, "no such file or folder");

        string index = System.IO.Path.Combine(path, IndexFileName);
        if (File.Exists(index)) return FromIndex(path, index);

        string single = System.IO.Path.Combine(path, SingleFileName);
        if (File.Exists(single)) return FromFiles(path, [single]);

        var all = Directory.GetFiles(path, "*.safetensors").Order(StringComparer.Ordinal).ToList();
        if (all.Count == 0)
            throw Format(path, $"no weights here: expected {IndexFileName}, {SingleFileName} or some *.safetensors files");
        return FromFiles(path, all);
    }

    public bool Contains(string name) => _fileOf.ContainsKey(name);

    public TensorInfo Get(string name) => FileFor(name).Get(name);

    /// <summary>Path of the file holding the tensor, for error messages.</summary>
    public string FileOf(string name) => FileFor(name).Path;

    public double[] ReadFloat64(string name) => FileFor(name).ReadFloat64(name);

    public float[] ReadFloat32(string name) => FileFor(name).ReadFloat32(name);

    public long[] ReadInt64(string name) => FileFor(name).ReadInt64(name);

    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
    }

    public override string ToString() => $"{Path} ({Names.Count} tensors in {_files.Count} files)";

    private ITensorSource FileFor(string name) =>
        _fileOf.TryGetValue(name, out var file) ? file : throw Format(Path, $"no tensor {Quote(name)}");

    /// <summary>Every tensor of every file; a name in two files is ambiguous, so an error.</summary>
    private static WeightStore FromFiles(string path, IReadOnlyList<string> filePaths)
    {
        var files = new List<ITensorSource>();
        try
        {
            var fileOf = new Dictionary<string, ITensorSource>(StringComparer.Ordinal);
            foreach (string filePath in filePaths)
            {
                var file = SafetensorsFile.Open(filePath);
                files.Add(file);
                foreach (var tensor in file.Tensors)
                {
                    if (!fileOf.TryAdd(tensor.Name, file))
                        throw Format(path, $"tensor {Quote(tensor.Name)} is in both {fileOf[tensor.Name].Path} and {filePath}");
                }
            }
            return new WeightStore(path, files, fileOf);
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    /// <summary>Only the tensors the index lists, each from the shard it names.</summary>
    private static WeightStore FromIndex(string folder, string indexPath)
    {
        var weightMap = ReadWeightMap(indexPath);
        var files = new List<ITensorSource>();
        try
        {
            var shards = new Dictionary<string, ITensorSource>(StringComparer.Ordinal);
            var fileOf = new Dictionary<string, ITensorSource>(StringComparer.Ordinal);
            foreach (var (tensor, shardName) in weightMap)
            {
                if (!shards.TryGetValue(shardName, out var shard))
                {
                    string shardPath = ShardPath(folder, indexPath, shardName);
                    if (!File.Exists(shardPath))
                        throw Format(indexPath, $"tensor {Quote(tensor)} is mapped to {shardPath}, which does not exist");
                    shard = SafetensorsFile.Open(shardPath);
                    files.Add(shard);
                    shards.Add(shardName, shard);
                }
                if (!shard.Contains(tensor))
                    throw Format(indexPath, $"tensor {Quote(tensor)} is mapped to {shard.Path}, which has no such tensor");
                fileOf.Add(tensor, shard);
            }
            return new WeightStore(folder, files, fileOf);
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    /// <summary>The index is input too: a shard it names must lie inside the index's folder.</summary>
    private static string ShardPath(string folder, string indexPath, string shardName)
    {
        string root = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(folder)) + System.IO.Path.DirectorySeparatorChar;
        string full;
        try
        {
            full = System.IO.Path.GetFullPath(System.IO.Path.Combine(root, shardName));
        }
        catch (ArgumentException)
        {
            throw Format(indexPath, $"shard file {Quote(shardName)} is not a valid path");
        }
        if (System.IO.Path.IsPathRooted(shardName) || !full.StartsWith(root, StringComparison.Ordinal))
            throw Format(indexPath, $"shard file {Quote(shardName)} is outside {root}");
        return full;
    }

    private static List<KeyValuePair<string, string>> ReadWeightMap(string indexPath)
    {
        byte[] bytes;
        try
        {
            if (new FileInfo(indexPath).Length > MaxIndexLength)
                throw Format(indexPath, $"index is larger than {MaxIndexLength} bytes");
            bytes = File.ReadAllBytes(indexPath);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Format(indexPath, $"cannot read: {e.Message}", e);
        }

        try
        {
            using var document = JsonDocument.Parse(bytes);
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out var map)
                || map.ValueKind != JsonValueKind.Object)
                throw Format(indexPath, "index has no \"weight_map\" object");

            // JsonDocument keeps duplicate keys; a tensor listed twice is ambiguous, so reject it.
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var entries = new List<KeyValuePair<string, string>>();
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw Format(indexPath, $"weight_map entry {Quote(entry.Name)} is not a file name string");
                if (!seen.Add(entry.Name))
                    throw Format(indexPath, $"weight_map lists tensor {Quote(entry.Name)} twice");
                entries.Add(new(entry.Name, entry.Value.GetString()!));
            }
            return entries;
        }
        catch (JsonException e)
        {
            throw Format(indexPath, $"index is not valid JSON: {UserText.Detail(e.Message)}", e);
        }
        catch (InvalidOperationException e)
        {
            // Strings that decode to unpaired surrogates.
            throw Format(indexPath, $"index has an invalid string: {UserText.Detail(e.Message)}", e);
        }
    }
}
