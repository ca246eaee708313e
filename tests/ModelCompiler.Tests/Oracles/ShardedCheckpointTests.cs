using System.Text.Json;
using ModelCompiler.Runtime;

namespace ModelCompiler.Tests.Oracles;

/// <summary>A checkpoint split into shards with model.safetensors.index.json evaluates exactly like the single file.</summary>
public class ShardedCheckpointTests
{
    [Fact]
    public void ShardedLlamaMatchesTheOracle()
    {
        var source = OracleCheck.Folder("llama");
        var dir = Directory.CreateTempSubdirectory("mc-shards").FullName;
        try
        {
            File.Copy(Path.Combine(source, "config.json"), Path.Combine(dir, "config.json"));
            using (var file = SafetensorsFile.Open(Path.Combine(source, "model.safetensors")))
            {
                var shards = file.Tensors.Select((t, i) => (t, shard: i % 2 == 0 ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors")).ToList();
                foreach (var group in shards.GroupBy(s => s.shard))
                    SafetensorsWriter.Write(Path.Combine(dir, group.Key),
                        group.Select(s => TensorData.FromFloat32(s.t.Name, s.t.Shape, file.ReadFloat32(s.t.Name))));
                var index = new { metadata = new { total_size = shards.Sum(s => s.t.ByteLength) }, weight_map = shards.ToDictionary(s => s.t.Name, s => s.shard) };
                File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), JsonSerializer.Serialize(index));
            }
            Assert.False(File.Exists(Path.Combine(dir, "model.safetensors")));
            OracleCheck.Run("llama", OracleCheck.Example("llama.arch"), dir);
            OracleCheck.Run("llama", dir, weights: null);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
